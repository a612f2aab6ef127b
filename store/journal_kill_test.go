//go:build unix

package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

const killChildEnv = "NANO_VM_MCP_STORE_KILL_CHILD"

// TestJournalKillChild is the child process of TestJournalSIGKILL: it
// commits steps of 16 runs at once (group commits), a tool version now
// and then and idempotency claims, printing each write once acknowledged,
// until it is killed. With _WRITERS=1 one run commits its steps one after
// the other (TestJournalSIGKILLSequential).
func TestJournalKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("the child of TestJournalSIGKILL")
	}
	db, err := Open(path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		mu.Unlock()
	}
	prefix := os.Getenv(killChildEnv + "_PREFIX")
	ack("ready")
	ctx := context.Background()
	writers := 16
	if n, err := strconv.Atoi(os.Getenv(killChildEnv + "_WRITERS")); err == nil {
		writers = n
	}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(prefix, "g", g)
			r, err := db.PutRun(ctx, Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "h", Input: stepPayload, Program: stepPayload})
			if err != nil {
				ack("error %v", err)
				return
			}
			r.Input, r.Program = nil, nil
			for i := 0; ; i++ {
				sc := StepCommit{Run: r, Index: i, Step: stepPayload,
					Envelope: &Envelope{StepID: fmt.Sprint("s", i), StateHash: "h", Payload: stepPayload}}
				if i == 0 {
					sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = RecordSHA256(stepPayload), RecordSHA256(stepPayload)
				}
				if _, err := db.CommitStep(ctx, sc); err != nil {
					ack("error %v", err)
					return
				}
				ack("step %s %d", id, i)
				switch {
				case g == 0 && i%40 == 39:
					mod := bytes.Repeat([]byte(fmt.Sprint("module ", i)), 2000)
					name := fmt.Sprint("t", prefix, "-", i)
					if err := db.PutToolVersion(ctx, ToolRecord{Name: name, ModuleSHA256: sha256hex(mod)}, mod); err != nil {
						ack("error %v", err)
						return
					}
					ack("tool %s %s", name, sha256hex(mod))
				case g == 1 && i%5 == 4:
					key := fmt.Sprint("k", prefix, "-", i)
					if _, _, err := db.ClaimIdempotencyKey(ctx, key, "req", fmt.Sprint("trace-", i), time.Hour); err != nil {
						ack("error %v", err)
						return
					}
					ack("claim %s", key)
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

// TestJournalSIGKILL ensures a process killed with SIGKILL amid sustained
// group commits loses no acknowledged write: after each kill the store
// opens, every step, tool version and idempotency claim the child
// printed as acknowledged is there, each run's steps are gapless, and the
// audit chain verifies. The child is this test binary, on real files.
func TestJournalSIGKILL(t *testing.T) { killTrials(t, 16) }

// TestJournalSIGKILLSequential is TestJournalSIGKILL with one writer
// whose steps commit one after the other, each alone (BM-INT-10's
// shape): the acknowledged steps since bbolt last committed live only in
// the write transaction kept open across batches and in the journal.
func TestJournalSIGKILLSequential(t *testing.T) { killTrials(t, 1) }

func killTrials(t *testing.T, writers int) {
	trials := 6
	if testing.Short() {
		trials = 2
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 20))
	path := filepath.Join(t.TempDir(), "kill.db")
	for trial := range trials {
		// One file for all trials, each child recovering what the last
		// one left; each writes under ids of its own.
		cmd := exec.Command(os.Args[0], "-test.run=^TestJournalKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path, killChildEnv+"_PREFIX="+fmt.Sprint(trial),
			killChildEnv+"_WRITERS="+fmt.Sprint(writers))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 100 + rng.IntN(1500)
		steps := map[string]int{}
		tools := map[string]string{}
		var claims []string
		lines, killed := 0, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch f[0] {
			case "step":
				n, _ := strconv.Atoi(f[2])
				steps[f[1]] = max(steps[f[1]], n+1)
			case "tool":
				tools[f[1]] = f[2]
			case "claim":
				claims = append(claims, f[1])
			case "ready":
			default:
				t.Fatalf("trial %d: child: %s", trial, sc.Text())
			}
			if lines++; lines == killAt && !killed {
				// Killed mid-stream: what it printed before is
				// acknowledged, and still read below.
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("trial %d: the child ended before the kill", trial)
		}

		db, err := Open(path, &Options{CheckOnOpen: true})
		if err != nil {
			t.Fatalf("trial %d: reopen after SIGKILL: %v", trial, err)
		}
		ctx := context.Background()
		for id, n := range steps {
			got, err := db.Steps(ctx, id, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < n {
				t.Fatalf("trial %d: run %s has %d steps, %d were acknowledged", trial, id, len(got), n)
			}
			for i, s := range got {
				if s.Index != i {
					t.Fatalf("trial %d: run %s: step %d at position %d: not gapless", trial, id, s.Index, i)
				}
			}
		}
		for name, sum := range tools {
			if rec, err := db.Tool(ctx, name); err != nil || rec.ModuleSHA256 != sum {
				t.Fatalf("trial %d: acknowledged tool %s: %+v %v", trial, name, rec, err)
			}
			if _, err := db.Module(ctx, sum); err != nil {
				t.Fatalf("trial %d: module of %s: %v", trial, name, err)
			}
		}
		for _, key := range claims {
			if _, err := db.IdempotencyKey(ctx, key); err != nil {
				t.Fatalf("trial %d: acknowledged claim %s: %v", trial, key, err)
			}
		}
		rep, err := db.VerifyChain(ctx, "")
		if err != nil || !rep.OK {
			t.Fatalf("trial %d: chain: %+v %v", trial, rep, err)
		}
		t.Logf("trial %d: killed amid %d acknowledged writes read; %d envelopes verify", trial, lines, rep.Checked)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

const noMapChildEnv = "NANO_VM_MCP_STORE_NOMAP_CHILD"

// TestJournalNoAddressSpaceChild is the child of
// TestJournalNoAddressSpace: under an address-space limit too small for
// the journal's far-ahead mapping it opens the store, commits and closes.
func TestJournalNoAddressSpaceChild(t *testing.T) {
	path := os.Getenv(noMapChildEnv)
	if path == "" {
		t.Skip("the child of TestJournalNoAddressSpace")
	}
	lim := syscall.Rlimit{Cur: 16 << 30, Max: 16 << 30}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	db, err := Open(path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	commitSteps(t, db, "r", 0, 5)
	if err := db.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(2)
	}
	fmt.Println("ok")
}

// TestJournalNoAddressSpace ensures a process whose address space is
// limited (ulimit -v) below the journal's 64 GiB mapping still opens the
// store, on bbolt's own syncs, after replaying a journal an earlier
// process left: the steps it acknowledged and the child's are all there.
func TestJournalNoAddressSpace(t *testing.T) {
	if journalMmapSize < 32<<30 {
		t.Skip("the journal's mapping fits any limit here")
	}
	path := filepath.Join(t.TempDir(), "nomap.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitSteps(t, db, "q", 0, 7)
	db.crash() // records after the checkpoint: the child replays them
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalNoAddressSpaceChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), noMapChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok\n")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkSteps(t, db, map[string]int{"q": 7, "r": 5})
}
