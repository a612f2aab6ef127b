package measure

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// Server measures a local PostgreSQL server's CPU from /proc: the
// postmaster's own time, its reaped children's (cutime, cstime: backends
// that exited) and every live child's, so that the difference over a
// phase counts backends that came and went.
type Server struct{ pid int }

// FindServer finds the postmaster of dataDir (the server's
// data_directory) through its postmaster.pid. It fails when the server is
// not on this machine or /proc is not readable.
func FindServer(dataDir string) (*Server, error) {
	f := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("find postmaster: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("find postmaster: %s: %w", f, err)
	}
	s := &Server{pid: pid}
	if _, err := s.Total(); err != nil {
		return nil, err
	}
	return s, nil
}

// Total is the server's CPU so far.
func (s *Server) Total() (time.Duration, error) {
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

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses a /proc/<pid>/stat text. The command (field 2) may
// hold spaces and parentheses, so the fields are counted from its last
// ')': then ppid is field 4 and utime, stime, cutime, cstime 14 to 17.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parse stat: %d fields after the command, want at least 15", len(f))
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
