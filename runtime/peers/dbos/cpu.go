package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// selfCPU is this process's user+system CPU time so far (getrusage
// RUSAGE_SELF).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// serverCPU measures a local PostgreSQL server's CPU: the postmaster's own
// time, its reaped children's (cutime, cstime: backends that exited), and
// every live child's. Reading it before and after a phase gives the
// server's CPU over the phase, backends that came and went included.
type serverCPU struct {
	pid int
}

// findServer finds the postmaster of the data directory dataDir (what
// SHOW data_directory answers) through its postmaster.pid. It fails when
// the server is not on this machine or /proc is not readable.
func findServer(dataDir string) (*serverCPU, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("find postmaster: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("find postmaster: %s: %w", filepath.Join(dataDir, "postmaster.pid"), err)
	}
	s := &serverCPU{pid: pid}
	if _, err := s.total(); err != nil {
		return nil, err
	}
	return s, nil
}

// total is the server's CPU so far.
func (s *serverCPU) total() (time.Duration, error) {
	st, err := readStat(s.pid)
	if err != nil {
		return 0, fmt.Errorf("postmaster cpu: %w", err)
	}
	ticks := st.utime + st.stime + st.cutime + st.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("postmaster cpu: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == s.pid {
			continue
		}
		c, err := readStat(pid)
		if err != nil || c.ppid != s.pid {
			continue // gone, or not the server's
		}
		ticks += c.utime + c.stime
	}
	return time.Duration(ticks) * clockTick, nil
}

type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readStat parses /proc/<pid>/stat (fields after the command, which may
// hold spaces and parentheses, so the parse starts at the last ')').
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse stat: no command field")
	}
	// Fields from 3 (state) on; ppid is field 4, utime..cstime 14..17.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parse stat: %d fields", len(f))
	}
	var st procStat
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("parse stat: ppid: %w", err)
	}
	for k, p := range []*int64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		if *p, err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("parse stat: field %d: %w", 14+k, err)
		}
	}
	return st, nil
}
