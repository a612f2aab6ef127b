package storetest

import (
	"encoding/json"
	"fmt"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testEnvelopeChain ensures envelopes get seq 1, 2, 3… with prev links and
// recomputable hashes, across step commits and standalone appends, and that
// per-run verification passes.
func testEnvelopeChain(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	var all []store.Envelope
	for i := range 3 {
		for _, id := range []string{"x", "y"} {
			env, err := st.CommitStep(ctx, store.StepCommit{
				Run:   store.Run{ID: id, Status: kernel.StatusRunning},
				Index: i, Step: raw(t, i),
				Envelope: &store.Envelope{StepID: fmt.Sprint("s", i), PolicyHash: "pol", StateHash: fmt.Sprint("state", i),
					Payload: raw(t, map[string]any{"out": i}), ModuleSHA256: "mod", ManifestSHA256: "man"},
			})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, *env)
		}
	}
	erase, err := st.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindErase, Payload: raw(t, map[string]any{"ref": "vault://secret/a"})})
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, erase)
	prev := store.GenesisHash
	for i, env := range all {
		if env.Seq != uint64(i+1) {
			t.Errorf("envelope %d has seq %d", i, env.Seq)
		}
		if env.PrevHash != prev {
			t.Errorf("seq %d prev_hash = %q, want %q", env.Seq, env.PrevHash, prev)
		}
		h, err := env.ComputeHash()
		if err != nil || h != env.Hash || len(h) != 64 {
			t.Errorf("seq %d hash = %q, recomputed %q (%v)", env.Seq, env.Hash, h, err)
		}
		if !env.RecordedAt.Equal(e.clock.Now()) {
			t.Errorf("seq %d recorded_at = %v, want %v", env.Seq, env.RecordedAt, e.clock.Now())
		}
		stored, err := st.Envelope(ctx, env.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(stored) != fmt.Sprint(env) {
			t.Errorf("stored seq %d = %+v\nreturned %+v", env.Seq, stored, env)
		}
		prev = env.Hash
	}
	xs, err := st.Envelopes(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 3 || xs[0].Seq != 1 || xs[1].Seq != 3 || xs[2].Seq != 5 || xs[2].StepIndex != 2 {
		t.Errorf("Envelopes(x) = %+v", xs)
	}
	for _, id := range []string{"", "x", "y", "no-such-run"} {
		rep, err := st.VerifyChain(ctx, id)
		if err != nil || !rep.OK {
			t.Errorf("VerifyChain(%q) = %+v, %v", id, rep, err)
		}
	}
	rep, _ := st.VerifyChain(ctx, "")
	if rep.Checked != 7 || rep.HeadSeq != 7 || rep.HeadHash != erase.Hash {
		t.Errorf("whole-chain report = %+v", rep)
	}
	if _, err := st.Envelope(ctx, 99); err == nil {
		t.Error("Envelope(99) succeeded")
	}
}

// testEnvelopeValidation ensures a bad standalone envelope is rejected and
// leaves no gap in the chain.
func testEnvelopeValidation(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	bad := []struct {
		name  string
		draft store.Envelope
	}{
		{name: "payload not json", draft: store.Envelope{Payload: []byte("{")}},
		{name: "payload with duplicate keys", draft: store.Envelope{Payload: []byte(`{"a":1,"a":2}`)}},
		{name: "negative step index", draft: store.Envelope{StepIndex: -1}},
	}
	for _, tc := range bad {
		if _, err := st.AppendEnvelope(ctx, tc.draft); err == nil {
			t.Errorf("%s: AppendEnvelope succeeded", tc.name)
		}
	}
	env, err := st.AppendEnvelope(ctx, store.Envelope{Kind: "custom", Seq: 42, Hash: "forged", PrevHash: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Seq != 1 || env.PrevHash != store.GenesisHash || env.Hash == "forged" || string(env.Payload) != "null" {
		t.Errorf("store kept caller-assigned chain fields: %+v", env)
	}
}

// testConcurrentCommits ensures concurrent runs sharing commits still
// produce one gap-free chain with every step stored once.
func testConcurrentCommits(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	const workers, steps = 16, 10
	Parallel(t, workers, func(w int) error {
		id := fmt.Sprint("exec-", w)
		for i := range steps {
			_, err := st.CommitStep(ctx, store.StepCommit{
				Run:   store.Run{ID: id, Status: kernel.StatusRunning},
				Index: i, Step: json.RawMessage(fmt.Sprint(i)), Envelope: &store.Envelope{StepID: "s"},
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	rep, err := st.VerifyChain(ctx, "")
	if err != nil || !rep.OK || rep.Checked != workers*steps {
		t.Fatalf("VerifyChain = %+v, %v; want %d envelopes", rep, err, workers*steps)
	}
	for w := range workers {
		envs, err := st.Envelopes(ctx, fmt.Sprint("exec-", w))
		if err != nil || len(envs) != steps {
			t.Fatalf("exec-%d: %d envelopes, %v", w, len(envs), err)
		}
		for i, env := range envs {
			if env.StepIndex != i {
				t.Errorf("exec-%d: envelope %d is for step %d", w, i, env.StepIndex)
			}
		}
	}
}
