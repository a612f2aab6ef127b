package measure

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Ensure /proc/<pid>/stat is read by field position after the command's
// last ')', whatever the command holds, and malformed texts are refused.
func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procStat
		ok   bool
	}{
		{"backend", "4242 (postgres) S 4200 4200 4200 0 -1 4194560 500 0 0 0 12 34 0 0 20 0 1 0 100 1 1",
			procStat{ppid: 4200, utime: 12, stime: 34}, true},
		{"postmaster with reaped children", "4200 (postgres) S 1 4200 4200 0 -1 4194560 500 0 0 0 7 8 900 100 20 0 1 0 100 1 1",
			procStat{ppid: 1, utime: 7, stime: 8, cutime: 900, cstime: 100}, true},
		{"command with spaces and parens", "17 (a) b) (c) R 3 17 17 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100 1 1",
			procStat{ppid: 3, utime: 1, stime: 2, cutime: 3, cstime: 4}, true},
		{"no command", "17 a R 3 17", procStat{}, false},
		{"truncated", "17 (a) R 3 17 17 0 -1 0 0 0 0 0 1 2", procStat{}, false},
		{"not a number", "17 (a) R x 17 17 0 -1 0 0 0 0 0 1 2 3 4 20", procStat{}, false},
		{"empty", "", procStat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("parseStat(%q): err %v, want ok %v", tt.in, err, tt.ok)
			}
			if got != tt.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// Ensure the server's CPU is found for this process's own pid file shape
// and refused, naming the file, when there is no postmaster.pid.
func TestFindServer(t *testing.T) {
	dir := t.TempDir()
	if _, err := FindServer(dir); err == nil || !strings.Contains(err.Error(), "postmaster.pid") {
		t.Errorf("no pid file: err %v, want one naming postmaster.pid", err)
	}
	// This process stands in for a postmaster: its CPU so far (its own
	// and its children's) is readable and not zero. /proc counts in
	// ticks of 10 ms, so the process first does 50 ms of CPU work by its
	// own rusage (a fresh test binary may not have used one tick yet).
	burnCPU(t, 50*time.Millisecond)
	if err := os.WriteFile(dir+"/postmaster.pid", []byte(strconv.Itoa(os.Getpid())+"\n/data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := FindServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.Total(); err != nil || d <= 0 {
		t.Errorf("total = %v, %v; want > 0", d, err)
	}
	if err := os.WriteFile(dir+"/postmaster.pid", []byte("not-a-pid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FindServer(dir); err == nil {
		t.Error("a pid file without a pid was accepted")
	}
}

// burnCPU does CPU work until this process has used at least d of CPU
// time by its rusage.
func burnCPU(t *testing.T, d time.Duration) {
	t.Helper()
	if ProcessCPU() == 0 {
		t.Skip("no rusage here")
	}
	x := uint64(1)
	for ProcessCPU() < d {
		for i := range 100_000 {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	sink = x
}

var sink uint64
