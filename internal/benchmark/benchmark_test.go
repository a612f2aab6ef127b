package benchmark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sharedCache is the compilation cache the package's tests share, so the
// bundled tools compile once.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nanovm-bench-cache")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func openEnv(t *testing.T, cfg Config) *Env {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = sharedCache
	}
	e, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// Ensure every scenario runs at a small size with all invariants held, the
// counts adding up, and the chain verifying with exactly the envelopes the
// scenarios counted.
func TestScenarios(t *testing.T) {
	e := openEnv(t, Config{})
	ctx := context.Background()
	tests := []struct {
		name      string
		items     int
		wantItems int
		// envelopes per item, -1 when it depends on the path.
		envPerItem int
	}{
		{name: "refund", items: 20, wantItems: 20, envPerItem: -1},
		{name: "parallel", items: 12, wantItems: 12, envPerItem: 1},
		{name: "roundtrip-nosync", items: 10, wantItems: 10, envPerItem: 0},
		{name: "roundtrip-fsync", items: 3, wantItems: 3, envPerItem: 0},
		{name: "envelope", items: 10, wantItems: 10, envPerItem: -1},
		{name: "replay", items: 10, wantItems: 10, envPerItem: -1},
		{name: "long", items: 10, wantItems: 1, envPerItem: LongHorizonSteps},
		{name: "toolcall-fresh", items: 15, wantItems: 15, envPerItem: 0},
		{name: "toolcall-pooled", items: 15, wantItems: 15, envPerItem: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Select(tc.name)
			if err != nil || len(sel) != 1 {
				t.Fatalf("select %q: %v %v", tc.name, sel, err)
			}
			var last [2]int
			r, err := e.Run(ctx, sel[0], Options{Items: tc.items, Concurrency: 4, Progress: func(done, total int) { last = [2]int{done, total} }, ProgressInterval: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !r.OK() {
				t.Fatalf("violations: %d %v", r.ViolationsTotal, r.Violations)
			}
			if r.Items != tc.wantItems || r.Ops != tc.wantItems*sel[0].opsPerItem {
				t.Errorf("items %d ops %d, want %d items", r.Items, r.Ops, tc.wantItems)
			}
			if last != [2]int{tc.wantItems, tc.wantItems} {
				t.Errorf("last progress %v, want all %d done", last, tc.wantItems)
			}
			if r.Throughput <= 0 || r.P50MS <= 0 || r.P50MS > r.P95MS || r.P95MS > r.P99MS || r.P99MS > r.MaxMS {
				t.Errorf("implausible figures: %+v", r)
			}
			switch {
			case tc.envPerItem >= 0 && r.Envelopes != tc.envPerItem*tc.wantItems:
				t.Errorf("envelopes %d, want %d", r.Envelopes, tc.envPerItem*tc.wantItems)
			case tc.envPerItem < 0 && r.Envelopes < 3*tc.wantItems:
				t.Errorf("envelopes %d, want at least 3 per run", r.Envelopes)
			}
			// Real work was done in the timed phase: the process used CPU and
			// allocated, and the GC's share is a fraction.
			if r.CPUSeconds <= 0 || r.CPUMicrosPerItem <= 0 || r.CPUCores <= 0 || r.AllocsPerItem <= 0 ||
				r.GCShare < 0 || r.GCShare > 1 || r.ItemUnit == "" {
				t.Errorf("implausible CPU figures: cpu %v s, %v µs/%s, %v cores, gc %v, %v allocs/item",
					r.CPUSeconds, r.CPUMicrosPerItem, r.ItemUnit, r.CPUCores, r.GCShare, r.AllocsPerItem)
			}
			if (r.Target != "") != (r.TargetMet != nil) {
				t.Errorf("target %q but met %v", r.Target, r.TargetMet)
			}
		})
	}
	rep, err := e.Audit(ctx)
	if err != nil || !rep.OK || rep.Checked == 0 {
		t.Fatalf("audit %+v %v", rep, err)
	}
}

// Ensure the refund workload takes all three paths the original's mix
// implies: refund, ineligible (cancelled order) and question.
func TestRefundMix(t *testing.T) {
	counts := map[string]int{}
	for i := range 100 {
		c := refundInput(i)
		counts[c.path[len(c.path)-1]+"/"+c.path[len(c.path)-2]]++
	}
	want := map[string]int{"process_refund/guard": 70, "reject/guard": 10, "reject/route": 20}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d of 100, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
}

// Ensure Audit notices when the chain holds a different number of
// envelopes than the runs counted.
func TestAuditCountsEnvelopes(t *testing.T) {
	e := openEnv(t, Config{})
	ctx := context.Background()
	sel, _ := Select("refund")
	if _, err := e.Run(ctx, sel[0], Options{Items: 5, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.Audit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit %+v %v", rep, err)
	}
	e.addEnvelopes(1) // as if one run had counted an envelope it never wrote
	rep, err := e.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !strings.Contains(rep.Problem, "chain holds") {
		t.Fatalf("audit %+v, want a count mismatch", rep)
	}
}

// Ensure a given database path is used, and that Close removes it (and
// the round-trip stores beside it) unless Keep is set.
func TestDBPathKeep(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep bool
	}{{name: "removed"}, {name: "kept", keep: true}} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "b.db")
			e, err := Open(context.Background(), Config{DBPath: db, Keep: tc.keep, CacheDir: sharedCache})
			if err != nil {
				t.Fatal(err)
			}
			sel, _ := Select("roundtrip-nosync")
			if _, err := e.Run(context.Background(), sel[0], Options{Items: 2}); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			matches, _ := filepath.Glob(db + "*")
			side, _ := filepath.Glob(db + ".roundtrip-*")
			if _, err := os.Stat(db); err != nil {
				t.Errorf("database %s: %v (the given file is never deleted)", db, err)
			}
			if tc.keep != (len(side) > 0) {
				t.Errorf("keep %v but side files %v (all %v)", tc.keep, side, matches)
			}
		})
	}
}

// Ensure Select matches ids, names and groups, keeps run order, and names
// the unknown.
func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "all", in: "", want: names(scenarios)},
		{name: "id", in: "BM-INT-01", want: []string{"refund"}},
		{name: "group", in: "roundtrip", want: []string{"roundtrip-nosync", "roundtrip-fsync"}},
		{name: "order kept", in: "long, refund", want: []string{"refund", "long"}},
		{name: "case", in: "REPLAY", want: []string{"replay"}},
		{name: "unknown", in: "refund,nope", wantErr: `no scenario "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); strings.Join(g, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", g, tc.want)
			}
		})
	}
}

func names(s []Scenario) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].Name
	}
	return out
}

// Ensure /proc status lines parse, and malformed ones are refused.
func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tbench\nVmHWM:\t   65536 kB\nVmRSS:\t   1024 kB\nThreads:\t7\nVmBad:\t-5 kB\n")
	tests := []struct {
		name   string
		field  string
		want   int64
		wantOK bool
	}{
		{name: "peak", field: "VmHWM", want: 65536, wantOK: true},
		{name: "resident", field: "VmRSS", want: 1024, wantOK: true},
		{name: "absent", field: "VmSwap"},
		{name: "no unit", field: "Threads"},
		{name: "negative", field: "VmBad"},
		{name: "prefix only", field: "Vm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseStatusKB(status, tc.field)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("got %d %v, want %d %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// FuzzParseStatusKB ensures the /proc status decoder never panics and
// never returns a negative size.
func FuzzParseStatusKB(f *testing.F) {
	f.Add([]byte("VmHWM:\t 123 kB\n"), "VmHWM")
	f.Add([]byte("VmHWM: kB\nVmHWM: 1 kB"), "VmHWM")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, status []byte, field string) {
		if n, ok := parseStatusKB(status, field); n < 0 || (!ok && n != 0) {
			t.Fatalf("got %d %v", n, ok)
		}
	})
}
