package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/tools"
)

// startStdioWith starts a stdio server on db with extra flags and
// initializes an MCP session.
func startStdioWith(t *testing.T, name, db string, extra ...string) *stdioProc {
	t.Helper()
	return startStdio(t, name, db, mcp.LATEST_PROTOCOL_VERSION, extra...)
}

// procStatusKiB reads a "Vm…: N kB" line of /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if n, err := strconv.ParseUint(f[0], 10, 64); err == nil && len(f) == 2 && f[1] == "kB" {
				return n
			}
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// bombServer starts the binary with args, uploads the test tool bomb (with
// manifest, an upload's manifest argument) and poll, and checks a good run.
// It returns the server, the good run's arguments, the server's pid and its
// peak resident memory (VmHWM, KiB) before any bomb.
func bombServer(t *testing.T, bomb string, manifest any, args ...string) (p *stdioProc, good map[string]any, pid int, before uint64) {
	t.Helper()
	p = startStdioWith(t, bomb, filepath.Join(t.TempDir(), bomb+".db"), args...)
	mods := allModules(t)
	p.mustCall(t, "register_tool", uploadOf(bomb, mods[bomb].Wasm, manifest))
	p.mustCall(t, "register_tool", uploadOf("poll", mods["poll"].Wasm, string(mods["poll"].Manifest)))
	good = map[string]any{"program": `{"steps":[{"id":"a","type":"tool","tool":"poll","args":{"status":"SUCCESS"}}]}`}
	if out := p.mustCall(t, "run_program", good); out["status"] != "success" {
		t.Fatalf("good run before: %v", out)
	}
	pid = p.cmd.Process.Pid
	return p, good, pid, procStatusKiB(t, pid, "VmHWM")
}

// Ensure 16 concurrent calls of a module touching memory past its ceiling,
// uploaded over MCP, against the real binary with a 256 MiB budget, are
// each answered with an error (the call's ceiling or the server's budget),
// the server then still runs a good call, and its peak resident memory
// (VmHWM) grew by no more than the budget plus a small margin (issue 12:
// "16 concurrent calls of modules that try to allocate beyond their
// ceiling leave the server serving and its RSS within the configured
// budget plus a margin").
func TestMemoryBombsWithinBudget(t *testing.T) {
	const (
		budgetMiB = 256
		ceiling   = 128 // each call's ceiling: 16 calls ask for 2 GiB
		calls     = 16
		// marginMiB is what the peak may exceed the start-up peak plus
		// the budget by: Go heap for 16 runs in flight, stacks, page
		// tables. Measured: the peak grew by 248 to 255 MiB, never past
		// the budget itself, as guest memory lives outside the Go heap
		// and is unmapped when its call ends (.rationale/sandbox.md);
		// with the budget set to 8 GiB the same calls grew it 1590 MiB.
		marginMiB = 32
	)
	p, good, pid, before := bombServer(t, "memtouch", map[string]any{"limits": map[string]any{"memory_mib": ceiling}}, "--memory-budget-mib", strconv.Itoa(budgetMiB))

	bomb := map[string]any{"program": `{"steps":[{"id":"a","type":"tool","tool":"memtouch"}]}`}
	var wg sync.WaitGroup
	outs := make([]map[string]any, calls)
	errs := make([]error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			outs[i], errs[i] = p.callTool(ctx, "run_program", bomb)
		}()
	}
	wg.Wait()
	kinds := map[string]int{}
	for i := range calls {
		if errs[i] != nil {
			t.Fatalf("call %d: %v\nstderr:\n%s", i, errs[i], p.stderr)
		}
		msg, _ := outs[i]["error"].(string)
		switch {
		case outs[i]["status"] != "failed":
			t.Errorf("call %d: %v, want a failed run", i, outs[i])
		case strings.Contains(msg, fmt.Sprintf("memory limit %d MiB exceeded", ceiling)):
			kinds["ceiling"]++
		case strings.Contains(msg, fmt.Sprintf("server memory budget of %d MiB exhausted", budgetMiB)):
			kinds["budget"]++
		default:
			t.Errorf("call %d: error %q is neither the ceiling nor the budget", i, msg)
		}
	}
	if out := p.mustCall(t, "run_program", good); out["status"] != "success" {
		t.Fatalf("good run after the bombs: %v", out)
	}
	peak := procStatusKiB(t, pid, "VmHWM")
	grew := int64(peak) - int64(before)
	t.Logf("outcomes %v; VmHWM %d MiB before, %d MiB after: grew %d MiB under a %d MiB budget (margin allowed %d MiB)",
		kinds, before>>10, peak>>10, grew>>10, budgetMiB, marginMiB)
	if limit := int64(budgetMiB+marginMiB) << 10; grew > limit {
		t.Fatalf("peak RSS grew by %d MiB, more than the %d MiB budget plus %d MiB", grew>>10, budgetMiB, marginMiB)
	}
}

// Ensure every ceiling is read from its flag or, failing that, its
// environment variable, and a bad value is a usage error naming both.
func TestCeilingFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    func(c *common) bool
		wantErr string
	}{
		{name: "defaults", want: func(c *common) bool { return c.ceilings == (tools.Ceilings{}) && c.maxSteps == 0 }},
		{name: "environment", env: map[string]string{
			"NANO_VM_MCP_MAX_CALL_MEMORY_MIB": "64", "NANO_VM_MCP_MAX_CALL_TIMEOUT": "30s", "NANO_VM_MCP_MAX_STDOUT_BYTES": "1000",
			"NANO_VM_MCP_MAX_STDERR_BYTES": "500", "NANO_VM_MCP_MAX_POOL_SIZE": "3", "NANO_VM_MCP_MEMORY_BUDGET_MIB": "1024", "NANO_VM_MCP_MAX_STEPS": "77",
		}, want: func(c *common) bool {
			return c.ceilings == tools.Ceilings{CallMemoryMiB: 64, CallTimeout: 30 * time.Second, StdoutBytes: 1000, StderrBytes: 500, PoolSize: 3, MemoryBudgetMiB: 1024} && c.maxSteps == 77
		}},
		{name: "flags win over the environment", env: map[string]string{"NANO_VM_MCP_MAX_CALL_MEMORY_MIB": "64"},
			args: []string{"--max-call-memory-mib", "32", "--memory-budget-mib=128", "--max-steps", "5", "--max-call-timeout", "2m"},
			want: func(c *common) bool {
				return c.ceilings.CallMemoryMiB == 32 && c.ceilings.MemoryBudgetMiB == 128 && c.maxSteps == 5 && c.ceilings.CallTimeout == 2*time.Minute
			}},
		{name: "module limits", env: map[string]string{"NANO_VM_MCP_MAX_MODULE_BYTES": "1048576"}, args: []string{"--compile-timeout", "5s"},
			want: func(c *common) bool {
				return c.moduleLimits == tools.ModuleLimits{ModuleBytes: 1 << 20, CompileTimeout: 5 * time.Second}
			}},
		{name: "not a number", args: []string{"--max-pool-size", "many"}, wantErr: `--max-pool-size (NANO_VM_MCP_MAX_POOL_SIZE) "many": want a positive integer`},
		{name: "negative from the environment", env: map[string]string{"NANO_VM_MCP_MEMORY_BUDGET_MIB": "-1"}, wantErr: `--memory-budget-mib (NANO_VM_MCP_MEMORY_BUDGET_MIB) "-1": want a positive integer`},
		{name: "bad duration", args: []string{"--max-call-timeout", "10"}, wantErr: `--max-call-timeout (NANO_VM_MCP_MAX_CALL_TIMEOUT) "10": want a positive duration such as 30s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range ceilingFlags {
				t.Setenv("NANO_VM_MCP_"+f.env, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs, c := newFlags(root.find("serve"), &cliIO{stdout: io.Discard, stderr: io.Discard})
			_, err := c.parse(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.As(err, new(usageError)) {
					t.Fatalf("err = %v, want usage error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Fatalf("parsed %+v, steps %d", c.ceilings, c.maxSteps)
			}
		})
	}
}
