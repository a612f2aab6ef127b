package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/storetest"
)

// TestHammer ensures 64 goroutines committing steps and envelopes at once,
// with readers alongside, leave one chain numbered 1..N without gaps.
func TestHammer(t *testing.T) {
	const workers, steps = 64, 20
	if testing.Short() {
		t.Skip("hammer test skipped in -short mode")
	}
	db := openTemp(t, &store.Options{NoSync: true})
	ctx := context.Background()
	// Goroutine 2w commits worker w's steps; 2w+1 reads them alongside.
	storetest.Parallel(t, workers*2, func(g int) error {
		w := g / 2
		id := fmt.Sprint("exec-", w)
		if g%2 == 1 {
			for range steps {
				if _, err := db.Envelopes(ctx, id); err != nil {
					return err
				}
				if _, err := db.Run(ctx, id); err != nil && !isNotFound(err) {
					return err
				}
			}
			return nil
		}
		for i := range steps {
			ex := store.Run{ID: id, Status: kernel.StatusRunning, Header: json.RawMessage(fmt.Sprint(i))}
			env, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: json.RawMessage(`{}`),
				Envelope: &store.Envelope{StepID: fmt.Sprint("s", i), Payload: json.RawMessage(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))}})
			if err != nil {
				return err
			}
			if env.TraceID != id || env.StepIndex != i {
				return fmt.Errorf("%s/%d got envelope for %s/%d", id, i, env.TraceID, env.StepIndex)
			}
			if i%5 == 0 {
				if _, err := db.AppendEnvelope(ctx, store.Envelope{Kind: "note", TraceID: id}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	const total = workers * (steps + steps/5)
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || !rep.OK || rep.Checked != total || rep.HeadSeq != total {
		t.Fatalf("VerifyChain = %+v, %v; want %d envelopes", rep, err, total)
	}
	for seq := uint64(1); seq <= total; seq++ {
		if _, err := db.Envelope(ctx, seq); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	for w := range workers {
		id := fmt.Sprint("exec-", w)
		if s, err := db.Steps(ctx, id, 0, 0); err != nil || len(s) != steps {
			t.Fatalf("%s: %d steps, %v", id, len(s), err)
		}
		if rep, err := db.VerifyChain(ctx, id); err != nil || !rep.OK {
			t.Fatalf("VerifyChain(%s) = %+v, %v", id, rep, err)
		}
	}
}
