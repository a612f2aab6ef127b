package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// replicas opens n serving runtimes on one fresh PostgreSQL database.
func replicas(t *testing.T, n int) []*runtime.Runtime {
	t.Helper()
	dsn := pgtest.Fresh(t)
	var rts []*runtime.Runtime
	for range n {
		rts = append(rts, runtimetest.Open(t, runtime.Config{DBPath: dsn, TakeOver: true}))
	}
	return rts
}

// TestReplicasRunAKeyOnce ensures one idempotency key sent to several
// replicas at once runs once: every caller gets the one run's outcome,
// all but one as a replay, and the database holds one execution.
func TestReplicasRunAKeyOnce(t *testing.T) {
	rts := replicas(t, 3)
	ctx := context.Background()
	prog := readExample(t, "program.json")
	const callers = 12
	var wg sync.WaitGroup
	results := make([]*runtime.RunResult, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = rts[i%len(rts)].RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "order-1"})
		}()
	}
	wg.Wait()
	fresh := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i].TraceID != results[0].TraceID || results[i].Status != "success" || results[i].Steps != 4 {
			t.Fatalf("caller %d got %+v; caller 0 %+v", i, results[i], results[0])
		}
		if !results[i].StoredOutcome {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d callers ran the key afresh, want 1", fresh)
	}
	page, err := rts[0].Traces(ctx, store.RunFilter{})
	if err != nil || len(page.Runs) != 1 {
		t.Fatalf("executions = %d, %v; want 1", len(page.Runs), err)
	}
	// The same key with another input conflicts on every replica.
	for i, rt := range rts {
		_, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: map[string]any{"amount": 1.0, "order_id": "x"}, IdempotencyKey: "order-1"})
		if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeIdempotencyConflict {
			t.Errorf("replica %d: conflicting request = %v, want %s", i, err, runtime.CodeIdempotencyConflict)
		}
	}
}

// TestReplicaRefusesAnotherVaultKey ensures a replica given another vault
// key than the database's first refuses to start, saying so.
func TestReplicaRefusesAnotherVaultKey(t *testing.T) {
	dsn := pgtest.Fresh(t)
	runtimetest.Open(t, runtime.Config{DBPath: dsn, TakeOver: true})
	_, err := runtime.Open(context.Background(), runtime.Config{DBPath: dsn, TakeOver: true, Logger: runtimetest.Logger(),
		VaultKey: []byte("another key, 32 bytes long......"), CacheDir: runtimetest.CacheDir})
	if !errors.Is(err, store.ErrVaultKeyMismatch) || !strings.Contains(err.Error(), store.VaultKeyEnv) {
		t.Fatalf("Open with another key = %v, want ErrVaultKeyMismatch naming %s", err, store.VaultKeyEnv)
	}
}

// TestReplicaNeedsVaultKeyFromEnvironment ensures a shared database
// never gets a key file beside it: without a key the replica refuses.
func TestReplicaNeedsVaultKeyFromEnvironment(t *testing.T) {
	dsn := pgtest.Fresh(t)
	t.Setenv(store.VaultKeyEnv, "")
	_, err := runtime.Open(context.Background(), runtime.Config{DBPath: dsn, Logger: runtimetest.Logger(), CacheDir: runtimetest.CacheDir})
	if err == nil || !strings.Contains(err.Error(), store.VaultKeyEnv) {
		t.Fatalf("Open without a key = %v, want a refusal naming %s", err, store.VaultKeyEnv)
	}
}

// TestReplicaRefusesAnotherPolicy ensures a serving replica does not start
// beside a live one running under another policy, while a CLI command
// (not serving) may.
func TestReplicaRefusesAnotherPolicy(t *testing.T) {
	dsn := pgtest.Fresh(t)
	runtimetest.Open(t, runtime.Config{DBPath: dsn, TakeOver: true})
	pol := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(pol, []byte(`{"policy_id":"strict","version":"1","tool_capabilities":{"validate_amount":[]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := runtime.Config{DBPath: dsn, PolicyPath: pol, TakeOver: true, Logger: runtimetest.Logger(), VaultKey: runtimetest.VaultKey, CacheDir: runtimetest.CacheDir}
	if _, err := runtime.Open(context.Background(), cfg); !errors.Is(err, runtime.ErrPolicyMismatch) {
		t.Fatalf("Open under another policy = %v, want ErrPolicyMismatch", err)
	}
	cfg.TakeOver = false
	runtimetest.Open(t, cfg)
}

// TestSuspendedRunResumesOnAnotherReplica ensures a run suspended on one
// replica is resumed through another, once.
func TestSuspendedRunResumesOnAnotherReplica(t *testing.T) {
	rts := replicas(t, 2)
	ctx := context.Background()
	prog := momoProgram
	res, err := rts[0].RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"order_id": "o1"}})
	if err != nil || res.Status != "suspended" {
		t.Fatalf("%+v %v", res, err)
	}
	done, err := rts[1].Resume(ctx, res.TraceID, map[string]any{"payment_status": "SUCCESS"}, "WEBHOOK", nil)
	if err != nil || done.Status != "success" {
		t.Fatalf("resume on the other replica = %+v, %v", done, err)
	}
	if _, err := rts[0].Resume(ctx, res.TraceID, map[string]any{"payment_status": "SUCCESS"}, "WEBHOOK", nil); err == nil {
		t.Fatal("a second resume on the first replica succeeded")
	}
}

// TestToolRemovedOnOneReplicaGoesEverywhere ensures a tool removed
// through one replica stops resolving on another that had it cached.
func TestToolRemovedOnOneReplicaGoesEverywhere(t *testing.T) {
	rts := replicas(t, 2)
	ctx := context.Background()
	prog := []byte(`{"name":"v","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1},"is_terminal":true}]}`)
	if res, err := rts[1].RunProgram(ctx, runtime.RunRequest{Program: prog}); err != nil || res.Status != "success" {
		t.Fatalf("first run = %+v, %v", res, err)
	}
	if err := rts[0].RemoveToolLocal(ctx, "validate_amount"); err != nil {
		t.Fatal(err)
	}
	// The notification arrives in the background; the replica must stop
	// resolving the tool once it does.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := rts[1].RunProgram(ctx, runtime.RunRequest{Program: prog})
		if e, ok := runtime.AsError(err); ok && e.Code == runtime.CodeUnknownTool {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still runs the removed tool: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var _ = fmt.Sprint
