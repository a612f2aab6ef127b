package benchmark

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// Ensure an Env on a postgres:// address runs the refund pipeline and the
// long horizon on a fresh database of that server (not on the database
// the address names), verifies the chain there, measures the server's CPU
// (the cluster .ci/pg.sh starts is on this machine and readable), and
// drops the fresh database at Close.
func TestEnvPostgres(t *testing.T) {
	addr := pgtest.Fresh(t)
	ctx := context.Background()
	e, err := Open(ctx, Config{DBPath: addr, CacheDir: sharedCache})
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.DBPath()
	if fresh == addr || !strings.Contains(fresh, "/nano_vm_mcp_bench_") {
		t.Errorf("scenarios run on %q, want a fresh nano_vm_mcp_bench_ database beside %q", fresh, addr)
	}
	if d := e.Durability(); !strings.Contains(d, "synchronous_commit=on") || !strings.Contains(d, "fsync=on") {
		t.Errorf("durability %q, want the server's fsync=on and synchronous_commit=on", d)
	}
	sel, err := Select("refund,long")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sel {
		r, err := e.Run(ctx, s, Options{Items: 200, Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Envelopes == 0 {
			t.Errorf("%s: %d violation(s) %v, %d envelopes", r.Name, r.ViolationsTotal, r.Violations, r.Envelopes)
		}
		if !strings.HasPrefix(r.ServerCPU, "included") || r.ServerCPUMSPerItem <= 0 || r.CPUMSPerItem <= 0 {
			t.Errorf("%s: server CPU %q %v ms/item, own %v ms/item", r.Name, r.ServerCPU, r.ServerCPUMSPerItem, r.CPUMSPerItem)
		}
		if !strings.HasPrefix(r.Durability, "PostgreSQL") {
			t.Errorf("%s: durability %q", r.Name, r.Durability)
		}
	}
	a, err := e.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !a.OK {
		t.Errorf("audit: %+v", a)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	name := fresh[strings.LastIndex(fresh, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after Close", name)
	}
}

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
	if _, err := findServer(dir); err == nil || !strings.Contains(err.Error(), "postmaster.pid") {
		t.Errorf("no pid file: err %v, want one naming postmaster.pid", err)
	}
	// This process stands in for a postmaster: its CPU so far (its own
	// and its children's) is readable and not zero.
	if err := os.WriteFile(dir+"/postmaster.pid", []byte(strconv.Itoa(os.Getpid())+"\n/data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := findServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.total(); err != nil || d <= 0 {
		t.Errorf("total = %v, %v; want > 0", d, err)
	}
	if err := os.WriteFile(dir+"/postmaster.pid", []byte("not-a-pid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := findServer(dir); err == nil {
		t.Error("a pid file without a pid was accepted")
	}
}
