package storetest

import (
	"fmt"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testChainHead ensures Head reports the last envelope appended, by step
// commits and standalone appends alike, agrees with VerifyChain's head,
// and is (0, GenesisHash) for an empty chain: signed checkpoints are taken
// from it.
func testChainHead(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	seq, hash, err := st.Head(ctx)
	if err != nil || seq != 0 || hash != store.GenesisHash {
		t.Fatalf("Head of an empty chain = %d, %q, %v; want 0, %q", seq, hash, err, store.GenesisHash)
	}
	var last store.Envelope
	for i := range 3 {
		env, err := st.CommitStep(ctx, store.StepCommit{
			Run:   store.Run{ID: "h", Status: kernel.StatusRunning},
			Index: i, Step: raw(t, i), Envelope: &store.Envelope{StepID: fmt.Sprint("s", i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		last = *env
		if seq, hash, err := st.Head(ctx); err != nil || seq != last.Seq || hash != last.Hash {
			t.Errorf("Head after step %d = %d, %q, %v; want %d, %q", i, seq, hash, err, last.Seq, last.Hash)
		}
	}
	// A step without an envelope leaves the head alone.
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "h", Status: kernel.StatusRunning}, Index: 3, Step: raw(t, 3)}); err != nil {
		t.Fatal(err)
	}
	if seq, hash, _ := st.Head(ctx); seq != last.Seq || hash != last.Hash {
		t.Errorf("Head after a step without envelope = %d, %q; want %d, %q", seq, hash, last.Seq, last.Hash)
	}
	erase, err := st.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindErase})
	if err != nil {
		t.Fatal(err)
	}
	seq, hash, err = st.Head(ctx)
	if err != nil || seq != 4 || hash != erase.Hash {
		t.Errorf("Head after an append = %d, %q, %v; want 4, %q", seq, hash, err, erase.Hash)
	}
	rep, err := st.VerifyChain(ctx, "")
	if err != nil || rep.HeadSeq != seq || rep.HeadHash != hash {
		t.Errorf("VerifyChain head = %d, %q (%v); Head = %d, %q", rep.HeadSeq, rep.HeadHash, err, seq, hash)
	}
	env, err := st.Envelope(ctx, seq)
	if err != nil || env.Hash != hash {
		t.Errorf("Envelope(%d).Hash = %q, %v; Head hash %q", seq, env.Hash, err, hash)
	}
}
