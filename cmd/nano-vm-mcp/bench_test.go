package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure `bench` runs every scenario at a tiny size through run(), prints
// one table row per scenario with the audit and invariant lines, and exits
// 0.
func TestBenchTable(t *testing.T) {
	code, table, errOut := runCLI(t, "", "bench", "--items", "20", "--concurrency", "4", "--cache-dir", sharedCache)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, table, errOut)
	}
	for _, want := range []string{
		"id", "throughput", "CPU µs/item", "cores", "GC", "allocs/item", "p95 ms", "peak RSS", "envelopes", "original",
		" /program", " /replay", " /call", " /item",
		"BM-INT-01", "refund", "BM-INT-04", "parallel", "roundtrip-nosync", "roundtrip-fsync",
		"BM-INT-06", "envelope", "BM-INT-08", "replay", "BM-INT-10", "long",
		"toolcall-fresh", "toolcall-pooled", "programs/s", "ops/s", "replays/s", "steps/s", "calls/s",
		"audit: chain verified", "invariants: held in every run",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if errOut != "" {
		t.Errorf("stderr not a terminal, yet written: %q", errOut)
	}
}

// Ensure `bench --json` prints a report that decodes, with one result per
// selected scenario, counted envelopes matching the audit, and ok true.
func TestBenchJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kept.db")
	code, out, errOut := runCLI(t, "", "bench", "--scenario", "refund,roundtrip,BM-INT-08", "--items", "20", "--concurrency", "4",
		"--json", "--cache-dir", sharedCache, "--db", db, "--keep")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	var names []string
	envelopes := 0
	for _, r := range rep.Results {
		names = append(names, r.Name)
		envelopes += r.Envelopes
		if r.Items != 20 || r.Throughput <= 0 || r.CPUMicrosPerItem <= 0 || r.AllocsPerItem <= 0 || !r.OK() {
			t.Errorf("%s: %+v", r.Name, r)
		}
		// Every scenario does work in the process, so its CPU per item
		// (getrusage over the timed phase) cannot be zero.
		if r.CPUMSPerItem <= 0 {
			t.Errorf("%s: cpu_ms_per_item %v, want > 0", r.Name, r.CPUMSPerItem)
		}
	}
	if got := strings.Join(names, ","); got != "refund,roundtrip-nosync,roundtrip-fsync,replay" {
		t.Errorf("scenarios %s", got)
	}
	if !rep.OK || rep.Audit == nil || !rep.Audit.OK || rep.Audit.Checked != envelopes || envelopes == 0 {
		t.Errorf("ok %v audit %+v, envelopes counted %d", rep.OK, rep.Audit, envelopes)
	}
	if rep.Machine.CPUs <= 0 || rep.Date == "" || rep.Durability != "fsync" {
		t.Errorf("header: %+v", rep)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("--db --keep: %v", err)
	}
}

// Ensure bad bench flags are usage errors (exit 2) that name the problem.
func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown scenario", args: []string{"--scenario", "refnud"}, want: `no scenario "refnud"`},
		{name: "zero items", args: []string{"--items", "0"}, want: "must be positive"},
		{name: "negative concurrency", args: []string{"--concurrency", "-1"}, want: "must be positive"},
		{name: "stray argument", args: []string{"refund"}, want: "takes no arguments"},
		{name: "unknown flag", args: []string{"--itemz", "3"}, want: "itemz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "", append([]string{"bench"}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

// Ensure the table's number formatting: thousands separators for rates,
// no false precision for slow ones.
func TestHumanRate(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "small", in: 12.34, want: "12.3"},
		{name: "hundreds", in: 999.6, want: "1,000"},
		{name: "thousands", in: 10234.4, want: "10,234"},
		{name: "millions", in: 1234567, want: "1,234,567"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := humanRate(tc.in); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
