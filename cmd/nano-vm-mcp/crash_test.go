package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// The crash test runs the program in a child process (the nano-vm-mcp
// binary's run command) and kills it with SIGKILL; the tools report every run
// to a counter server in the parent through nanovm.http_request, a side
// channel the crash cannot erase.

const crashSteps = 12

var testVaultKey = []byte("0123456789abcdef0123456789abcdef")

func crashProgram(base string) json.RawMessage {
	steps := make([]string, crashSteps)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"http_get","args":{"url":"%s/s%d"}}`, i, base, i)
	}
	return json.RawMessage(`{"name":"crash_chain","steps":[` + strings.Join(steps, ",") + `]}`)
}

// crashTrials is how many kills a crash test makes (short under -short)
// and its random source, seeded from the clock with the seed logged so a
// failure can be replayed; stream tells the tests' sources apart.
func crashTrials(t *testing.T, long, short int, stream uint64) (int, *rand.Rand) {
	t.Helper()
	trials := long
	if testing.Short() {
		trials = short
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return trials, rand.New(rand.NewPCG(seed, stream))
}

// Ensure a run killed with SIGKILL at random points is continued by the
// same idempotency key from its last durable step: the store opens, the
// audit chain verifies, and every step ran at most once except the one in
// flight at the crash.
func TestCrashRecovery(t *testing.T) {
	trials, r := crashTrials(t, 50, 8, 1)
	cnt := &killCounter{hits: map[string]int{}}
	srv := httptest.NewServer(cnt)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	// A tools folder with http_get allowed to reach the counter only.
	toolsDir := httpGetToolsDir(t, u.Host)
	progFile := filepath.Join(t.TempDir(), "crash.json")
	if err := os.WriteFile(progFile, crashProgram(srv.URL), 0o644); err != nil {
		t.Fatal(err)
	}

	killedAt := map[string]int{}
	defer func() { t.Logf("kills: %v", killedAt) }()
	for trial := 0; trial < trials; trial++ {
		db := filepath.Join(t.TempDir(), "crash.db")
		cnt.mu.Lock()
		cnt.hits, cnt.total = map[string]int{}, 0
		// Two trials in five kill inside a tool call; two a few
		// milliseconds after the first call (between steps, or inside a
		// commit); one after a random delay from the start (mostly during
		// start-up).
		mode := trial % 5
		inCall := mode < 2
		cnt.killAt = 0
		if inCall {
			cnt.killAt = 1 + r.IntN(crashSteps)
		}
		first := make(chan struct{})
		cnt.first = first
		start := func() (*exec.Cmd, *strings.Builder) {
			return startRunChild(t, progFile, "--json", "--idempotency-key", "crash-key",
				"--db", db, "--tools-dir", toolsDir, "--cache-dir", sharedCache, "--no-bundled-tools")
		}
		// The child starts with the lock held, so its first calls wait
		// until it is the victim: a kill at a call is never missed.
		cmd, _ := start()
		cnt.victim = cmd.Process
		cnt.mu.Unlock()
		switch mode {
		case 2, 3:
			select {
			case <-first:
			case <-time.After(30 * time.Second):
				t.Fatalf("trial %d: the child made no tool call", trial)
			}
			time.Sleep(time.Duration(r.IntN(8000)) * time.Microsecond)
			cmd.Process.Signal(syscall.SIGKILL)
		case 4:
			time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		cmd.Wait()
		cnt.mu.Lock()
		cnt.victim, cnt.killAt, cnt.first = nil, 0, nil
		before := cnt.total
		cnt.mu.Unlock()
		switch {
		case before == 0:
			killedAt["start-up"]++
		case before < crashSteps:
			killedAt["mid-run"]++
		default:
			killedAt["after the last tool call"]++
		}

		// Restart: the same key finishes the run.
		finishAfterCrash(t, trial, start, runtime.Config{DBPath: db, NoBundledTools: true, CacheDir: sharedCache}, crashSteps)

		cnt.mu.Lock()
		twice := 0
		for i := 0; i < crashSteps; i++ {
			switch n := cnt.hits[fmt.Sprintf("/s%d", i)]; {
			case n == 2:
				twice++
			case n != 1:
				t.Fatalf("trial %d: step s%d ran %d times: %v", trial, i, n, cnt.hits)
			}
		}
		if twice > 1 || (inCall && twice != 1) {
			t.Fatalf("trial %d (kill in call: %v): %d steps ran twice: %v", trial, inCall, twice, cnt.hits)
		}
		cnt.mu.Unlock()
	}
	if killedAt["mid-run"] < trials/2 {
		t.Errorf("only %d of %d kills landed mid-run: %v", killedAt["mid-run"], trials, killedAt)
	}
}

// startRunChild starts `nano-vm-mcp run program flags…` with the tests'
// vault key, its stdout kept and its stderr dropped, for a test to kill.
func startRunChild(t *testing.T, program string, flags ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", program}, flags...)...)
	cmd.Env = append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// finishAfterCrash restarts the killed run with start (the same key) and
// checks it finishes with all steps, and that the store opened with cfg
// verifies exactly one envelope per step.
func finishAfterCrash(t *testing.T, trial int, start func() (*exec.Cmd, *strings.Builder), cfg runtime.Config, steps int) {
	t.Helper()
	cmd, out := start()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("trial %d: restart: %v\n%s", trial, err, out)
	}
	var res runtime.RunResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("trial %d: %v: %q", trial, err, out)
	}
	if res.Status != "success" || res.Steps != steps {
		t.Fatalf("trial %d: %+v", trial, res)
	}
	rt := openAfterCrash(t, trial, cfg)
	rep, err := rt.VerifyAudit(context.Background(), "")
	rt.Close()
	if err != nil || !rep.OK || rep.Checked != steps {
		t.Fatalf("trial %d: audit %+v %v", trial, rep, err)
	}
}

// openAfterCrash opens the runtime on a database a killed process left.
func openAfterCrash(t *testing.T, trial int, cfg runtime.Config) *runtime.Runtime {
	t.Helper()
	cfg.VaultKey, cfg.Logger = testVaultKey, slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := runtime.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("trial %d: reopen: %v", trial, err)
	}
	return rt
}

// pureSteps is the length of the pipelined crash test's chain.
const pureSteps = 2000

// Ensure a run of pure tool steps, whose commits are pipelined (--pipeline:
// the run goes on while earlier steps are made durable), survives SIGKILL at any
// moment: the store opens, what is durable is a gapless prefix, the same
// key finishes the run, and the audit chain holds exactly one envelope per
// step.
func TestCrashRecoveryPipelined(t *testing.T) {
	trials, r := crashTrials(t, 8, 4, 2)
	steps := make([]string, pureSteps)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"v%d","type":"tool","tool":"validate_amount","args":{"amount":%d}}`, i, i+1)
	}
	progFile := filepath.Join(t.TempDir(), "pure.json")
	if err := os.WriteFile(progFile, []byte(`{"name":"pure_chain","steps":[`+strings.Join(steps, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	midRun := 0
	var db string
	run := func() (*exec.Cmd, *strings.Builder) {
		return startRunChild(t, progFile, "--pipeline", "--json", "--idempotency-key", "pure-key", "--db", db, "--cache-dir", cache)
	}
	if _, err := writtenBy(os.Getpid()); err != nil {
		t.Skipf("needs /proc/<pid>/io to place its kills: %v", err)
	}
	// Where to kill, from what the child has written (wchar): start-up
	// writes the same bytes every time, and the run then writes as its
	// steps are committed. A run of one step gives start-up's bytes, a
	// whole run the run's, once the compilation cache is filled. (A kill
	// timed by the clock missed the run, which is the last tenth of the
	// wall time, whenever a loaded machine stretched start-up: a CI
	// failure.)
	oneFile := filepath.Join(t.TempDir(), "one.json")
	if err := os.WriteFile(oneFile, []byte(`{"name":"pure_chain","steps":[`+steps[0]+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var startUp, whole int64
	for range 2 {
		db = filepath.Join(t.TempDir(), "warm.db")
		cmd, out := startRunChild(t, oneFile, "--pipeline", "--json", "--db", db, "--cache-dir", cache)
		if startUp = watchWrites(cmd, 0); cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("warm-up run of one step failed: %s", out)
		}
		db = filepath.Join(t.TempDir(), "warm.db")
		cmd, out = run()
		if whole = watchWrites(cmd, 0); cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("warm-up run failed: %s", out)
		}
	}
	t.Logf("start-up writes %d bytes, a whole run %d", startUp, whole)
	if whole <= startUp {
		t.Fatalf("a whole run wrote %d bytes, no more than start-up's %d: nothing to place the kills by", whole, startUp)
	}
	// The kill lands at a random point of the run's writes; the window
	// moves towards where kills landed mid-run, and trials go on (to at
	// most three times as many) until at least one has.
	lo, span := 5, 90
	for trial := 0; trial < trials || (midRun == 0 && trial < 3*trials); trial++ {
		db = filepath.Join(t.TempDir(), "pure.db")
		cmd, _ := run()
		watchWrites(cmd, startUp+(whole-startUp)*int64(lo+r.IntN(span))/100)

		rt := openAfterCrash(t, trial, runtime.Config{DBPath: db, CacheDir: cache})
		if page, err := rt.Store().Runs(context.Background(), store.RunFilter{}); err == nil {
			switch {
			case len(page.Runs) == 0: // killed before the run began
				lo = min(lo+10, 90)
			case page.Runs[0].Status == kernel.StatusSuccess: // after it ended
				lo = max(lo-10, 5)
			}
		}
		if un, err := rt.Unfinished(context.Background()); err == nil {
			for _, e := range un {
				tv, err := rt.Trace(context.Background(), e.ID, 0, pureSteps)
				if err != nil {
					t.Fatalf("trial %d: trace of the killed run: %v", trial, err)
				}
				for i, s := range tv.Steps {
					if s.Index != i || s.StepID != fmt.Sprint("v", i) {
						t.Fatalf("trial %d: durable step %d is %d/%s: not a gapless prefix", trial, i, s.Index, s.StepID)
					}
				}
				if tv.TotalSteps > 0 {
					midRun++
				}
				t.Logf("trial %d: killed after %d durable steps", trial, tv.TotalSteps)
			}
		}
		rt.Close()

		finishAfterCrash(t, trial, run, runtime.Config{DBPath: db, CacheDir: cache}, pureSteps)
	}
	t.Logf("%d kills landed mid-run", midRun)
	if midRun == 0 {
		t.Errorf("no kill landed mid-run in %d trials", 3*trials)
	}
}

// watchWrites waits for cmd, a started child, to end, and returns the
// most it was seen to have written; with killAt > 0 it SIGKILLs the child
// as soon as it has written killAt bytes.
func watchWrites(cmd *exec.Cmd, killAt int64) int64 {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	var seen int64
	for {
		if n, err := writtenBy(cmd.Process.Pid); err == nil {
			seen = max(seen, n)
		}
		if killAt > 0 && seen >= killAt {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return seen
		}
		select {
		case <-done:
			return seen
		case <-poll.C:
		}
	}
}

// writtenBy is what process pid has written so far: the wchar of
// /proc/<pid>/io, the bytes its write calls were given.
func writtenBy(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no wchar in /proc/%d/io", pid)
}

// Ensure every step acknowledged before a SIGKILL is there after it, on
// the store's write-ahead journal (the default): a long chain of tool
// steps, each durable before the next one's tool call, is killed inside
// the k-th call; the reopened store holds exactly the k-1 steps before it
// (gapless), the audit chain verifies, and the same key finishes the run.
func TestCrashEveryAcknowledgedStep(t *testing.T) {
	trials, r := crashTrials(t, 8, 3, 3)
	const steps = 120
	cnt := &killCounter{hits: map[string]int{}}
	srv := httptest.NewServer(cnt)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	toolsDir := httpGetToolsDir(t, u.Host)
	chain := make([]string, steps)
	for i := range chain {
		chain[i] = fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"http_get","args":{"url":"%s/s%d"}}`, i, srv.URL, i)
	}
	progFile := filepath.Join(t.TempDir(), "long.json")
	if err := os.WriteFile(progFile, []byte(`{"name":"long_chain","steps":[`+strings.Join(chain, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for trial := range trials {
		db := filepath.Join(t.TempDir(), "ack.db")
		start := func() (*exec.Cmd, *strings.Builder) {
			return startRunChild(t, progFile, "--json", "--idempotency-key", "ack-key",
				"--db", db, "--tools-dir", toolsDir, "--cache-dir", sharedCache, "--no-bundled-tools")
		}
		killAt := 2 + r.IntN(steps-1)
		cnt.mu.Lock()
		cnt.hits, cnt.total, cnt.killAt = map[string]int{}, 0, killAt
		cmd, _ := start() // under the lock, as in TestCrashRecovery
		cnt.victim = cmd.Process
		cnt.mu.Unlock()
		cmd.Wait()
		cnt.mu.Lock()
		cnt.victim, cnt.killAt = nil, 0
		cnt.mu.Unlock()

		cfg := runtime.Config{DBPath: db, NoBundledTools: true, CacheDir: sharedCache}
		rt := openAfterCrash(t, trial, cfg)
		un, err := rt.Unfinished(context.Background())
		if err != nil || len(un) != 1 {
			t.Fatalf("trial %d: unfinished runs %v, %v", trial, un, err)
		}
		tv, err := rt.Trace(context.Background(), un[0].ID, 0, steps)
		if err != nil {
			t.Fatalf("trial %d: trace: %v", trial, err)
		}
		if tv.TotalSteps != killAt-1 || len(tv.Steps) != killAt-1 {
			t.Fatalf("trial %d: killed in tool call %d, %d durable steps (want every one acknowledged before it: %d)", trial, killAt, tv.TotalSteps, killAt-1)
		}
		for i, s := range tv.Steps {
			if s.Index != i || s.StepID != fmt.Sprint("s", i) {
				t.Fatalf("trial %d: durable step %d is %d/%s: not gapless", trial, i, s.Index, s.StepID)
			}
		}
		rep, err := rt.VerifyAudit(context.Background(), "")
		rt.Close()
		if err != nil || !rep.OK {
			t.Fatalf("trial %d: audit after the kill: %+v %v", trial, rep, err)
		}
		finishAfterCrash(t, trial, start, cfg, steps)
	}
}
