package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// Ensure hostile tables cannot take the server down (issue 12, finding 1),
// in the real binary: a table declared at 2^27 entries is refused at
// register_tool naming it; table.grow by 0xF0000000 entries fails inside
// the guest (-1) and fails only the call; 16 concurrent calls of a module
// holding the largest table allowed stay far from the old 8 GB; and the
// server serves a good call afterwards. (Before: the first registered,
// then each instance took 1 GiB; the grow killed the process with a Go
// fatal out-of-memory.)
func TestHostileTablesSubprocess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	p := startStdio(t, "tables", filepath.Join(t.TempDir(), "tables.db"), mcp.LATEST_PROTOCOL_VERSION)
	mods := allModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	register := func(name string) error {
		_, err := p.callTool(ctx, "register_tool", uploadOf(name, mods[name].Wasm, string(mods[name].Manifest)))
		return err
	}
	run := func(tool string, args map[string]any) map[string]any {
		out, err := p.callTool(ctx, "run_program", map[string]any{"program": map[string]any{
			"steps": []any{map[string]any{"id": "a", "type": "tool", "tool": tool, "args": args}},
		}})
		if err != nil {
			t.Fatalf("run %s: %v\nstderr:\n%s", tool, err, p.stderr)
		}
		return out
	}

	err := register("table_huge")
	if err == nil || !strings.Contains(err.Error(), "table 0 declares 134217728 elements at start, ceiling is 1000000") {
		t.Fatalf("register table_huge: %v", err)
	}

	if err := register("table_grow"); err != nil {
		t.Fatal(err)
	}
	out := run("table_grow", nil)
	if out["status"] != "failed" || !strings.Contains(fmt.Sprint(out["error"]), "unreachable") {
		t.Fatalf("table_grow run: %v\nstderr:\n%s", out, p.stderr)
	}

	if err := register("table_fill"); err != nil {
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	rssBefore := procStatusKiB(t, pid, "VmRSS")
	var wg sync.WaitGroup
	outs := make([]map[string]any, 16)
	for i := range outs {
		wg.Go(func() { outs[i] = run("table_fill", nil) })
	}
	wg.Wait()
	for i, o := range outs {
		if o["status"] != "failed" || !strings.Contains(fmt.Sprint(o["error"]), "unreachable") {
			t.Fatalf("table_fill call %d: %v", i, o)
		}
	}
	hwm := procStatusKiB(t, pid, "VmHWM")
	t.Logf("server RSS before the 16 calls %d KiB, peak (VmHWM) %d KiB", rssBefore, hwm)
	// 16 instances × (8 MB of table + 64 KiB of memory) is about 130 MB;
	// the old code held 16 GiB for table_huge alone.
	if hwm > 1<<20 {
		t.Fatalf("server peak RSS %d KiB", hwm)
	}

	if err := register("validate_amount"); err != nil {
		t.Fatal(err)
	}
	if out := run("validate_amount", map[string]any{"amount": 12.5}); out["status"] != "success" {
		t.Fatalf("good call after the hostile ones: %v", out)
	}
}
