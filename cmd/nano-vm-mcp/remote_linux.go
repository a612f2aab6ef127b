package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nanovm/nano-vm-mcp/store"
)

// lockHolder finds the process holding the database's flock in
// /proc/locks, and its command line. It is a best effort, for messages:
// ok is false when it cannot tell. The journal's lock is looked at first:
// a store locks it before the bbolt file, so an opener refused by it may
// find the bbolt file not yet locked (or not yet made).
func lockHolder(path string) (pid int, args []string, ok bool) {
	for _, p := range []string{path + store.JournalSuffix, path} {
		if pid, args, ok = flockHolder(p); ok {
			return pid, args, true
		}
	}
	return 0, nil, false
}

// flockHolder is lockHolder for the one file path.
func flockHolder(path string) (pid int, args []string, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, nil, false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, nil, false
	}
	defer f.Close()
	inode := ":" + strconv.FormatUint(st.Ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters are "1: -> FLOCK …".
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], inode) {
			continue
		}
		if pid, err = strconv.Atoi(fields[4]); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + fields[4] + "/cmdline")
		for _, a := range bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0}) {
			args = append(args, string(a))
		}
		return pid, args, true
	}
	return 0, nil, false
}

// processEnv is process pid's environment when this user may read it.
func processEnv(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil
	}
	var out []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		out = append(out, string(kv))
	}
	return out
}
