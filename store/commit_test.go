package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure a step commit tells a taken index and a missing predecessor
// apart wherever the run's keys sit in the steps bucket: first, between
// other runs, and last (where the search for the new key finds nothing
// after it), and that the chain head stored once per transaction is the
// last envelope's, also after a batch of many.
func TestCommitStepGapAndExists(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, nil)
	step := func(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"index":%d}`, i)) }
	for _, id := range []string{"m-run", "a-run", "z-run"} {
		t.Run(id, func(t *testing.T) {
			ex := store.Run{ID: id, Status: kernel.StatusRunning}
			tests := []struct {
				index int
				want  error
			}{
				{1, store.ErrStepGap}, {0, nil}, {0, store.ErrStepExists}, {2, store.ErrStepGap},
				{1, nil}, {1, store.ErrStepExists}, {2, nil}, {4, store.ErrStepGap}, {3, nil},
			}
			for _, tc := range tests {
				_, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: tc.index, Step: step(tc.index),
					Envelope: &store.Envelope{StepID: fmt.Sprint("s", tc.index), Payload: step(tc.index)}})
				if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
					t.Fatalf("commit %d: %v, want %v", tc.index, err, tc.want)
				}
			}
			steps, err := db.Steps(ctx, id, 0, 0)
			if err != nil || len(steps) != 4 {
				t.Fatalf("%d steps, %v; want 4", len(steps), err)
			}
		})
	}
	// Many appends in flight share transactions; the recorded head must be
	// the last envelope's.
	var pending []*store.PendingCommit
	for r := range 20 {
		ex := store.Run{ID: fmt.Sprint("batch-", r), Status: kernel.StatusRunning}
		for i := range 5 {
			pending = append(pending, db.StartCommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: step(i),
				Envelope: &store.Envelope{StepID: "s", Payload: step(i)}}))
		}
	}
	var last *store.Envelope
	for _, p := range pending {
		env, err := p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		last = env
	}
	seq, hash, err := db.Head(ctx)
	if err != nil || seq != last.Seq || hash != last.Hash {
		t.Fatalf("head %d %s %v, want %d %s", seq, hash, err, last.Seq, last.Hash)
	}
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
