// Package storetest is the conformance suite every store.Store
// implementation must pass: bbolt today, PostgreSQL later. Run it from the
// implementation's tests with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Opener opens a fresh, empty store whose clock is now, and arranges for
// it to be closed in t.Cleanup. The suite registers its own cleanup after
// calling it, so the chain is verified before the store closes.
type Opener func(t *testing.T, now func() time.Time) store.Store

// env is what one conformance test gets.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	clock *kerneltest.ManualClock
}

// Run runs the conformance suite. Every subtest gets its own store, and
// its audit chain is verified when the subtest ends.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"Programs", testPrograms},
		{"DeleteProgram", testDeleteProgram},
		{"Runs", testRuns},
		{"RunPaging", testRunPaging},
		{"Unfinished", testUnfinished},
		{"CommitStep", testCommitStep},
		{"CommitStepRunLifecycle", testCommitStepRunLifecycle},
		{"StartCommitStepInOrder", testStartCommitStepInOrder},
		{"Steps", testSteps},
		{"RunTrace", testRunTrace},
		{"EnvelopeChain", testEnvelopeChain},
		{"StepEnvelope", testStepEnvelope},
		{"EnvelopeValidation", testEnvelopeValidation},
		{"ChainHead", testChainHead},
		{"ConcurrentCommits", testConcurrentCommits},
		{"RecordCoverage", testRecordCoverage},
		{"FinishedRunSealed", testFinishedRunSealed},
		{"Idempotency", testIdempotency},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"IdempotencyConcurrentClaim", testIdempotencyConcurrentClaim},
		{"Secrets", testSecrets},
		{"Vault", testVault},
		{"Tools", testTools},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := kerneltest.NewManualClock()
			st := open(t, clock.Now)
			t.Cleanup(func() { VerifyChain(t, st) })
			tc.fn(&env{t: t, ctx: context.Background(), st: st, clock: clock})
		})
	}
}

// VerifyChain fails t unless st's whole audit chain verifies. Only the
// chain: most tests here write records without envelopes (the store
// allows it; verify then reports them as not covered), and
// testRecordCoverage holds the records to the chain.
func VerifyChain(t testing.TB, st store.Store) {
	t.Helper()
	rep, err := st.VerifyChain(context.Background(), "")
	if err != nil {
		t.Errorf("verify chain: %v", err)
		return
	}
	if rep.Broken != nil {
		t.Errorf("verify chain: broken at seq %d: %s", rep.Broken.Seq, rep.Broken.Reason)
	}
	if !rep.OK && rep.Broken == nil && len(rep.Records) == 0 {
		t.Errorf("verify chain: not OK without a reason: %+v", rep)
	}
}

// raw marshals v for test records.
func raw(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unfinished reports whether Unfinished lists the trace id.
func (e *env) unfinished(id string) bool {
	e.t.Helper()
	list, err := e.st.Unfinished(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, x := range list {
		if x.ID == id {
			return true
		}
	}
	return false
}

// Parallel runs work(0) … work(n-1) at once and fails t with the first
// error any of them returns, once all have returned.
func Parallel(t testing.TB, n int, work func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
