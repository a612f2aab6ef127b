package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
)

// appendEnvelopes appends n erasure-kind envelopes straight to the store.
func appendEnvelopes(t *testing.T, rt *runtime.Runtime, n int) store.Envelope {
	t.Helper()
	var last store.Envelope
	for range n {
		var err error
		if last, err = rt.Store().AppendEnvelope(context.Background(), store.Envelope{Kind: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// Ensure a checkpoint signed by the runtime verifies while the chain grows,
// and that a checkpoint by an untrusted key, for another chain, altered, or
// not a checkpoint at all is reported with its problem, never as OK.
func TestVerifyCheckpoint(t *testing.T) {
	ctx := context.Background()
	signer := runtimetest.Signer(t, "ops")
	dir := t.TempDir()
	rt := runtimetest.Open(t, runtime.Config{DBPath: filepath.Join(dir, "a.db"), CheckpointSigner: signer, NoBundledTools: true})
	if got := rt.CheckpointOrigin(); got != "nano-vm-mcp/a.db" {
		t.Errorf("origin %q", got)
	}
	head := appendEnvelopes(t, rt, 3)
	msg, c, err := rt.SignCheckpoint(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 3 || c.Hash != head.Hash || c.Origin != "nano-vm-mcp/a.db" {
		t.Fatalf("checkpoint %+v, head %d %s", c, head.Seq, head.Hash)
	}
	appendEnvelopes(t, rt, 2)

	other := runtimetest.Signer(t, "ops")
	byOther, _ := other.Sign(c)
	elsewhere, _ := signer.Sign(checkpoint.Checkpoint{Origin: "nano-vm-mcp/b.db", Size: 3, Hash: c.Hash})
	tests := []struct {
		name    string
		msg     []byte
		problem runtime.CheckpointProblem
		seq     uint64
	}{
		{name: "extended chain", msg: msg},
		{name: "untrusted key", msg: byOther, problem: runtime.CheckpointUntrustedKey},
		{name: "wrong origin", msg: elsewhere, problem: runtime.CheckpointWrongOrigin},
		{name: "altered text", msg: bytes.Replace(msg, []byte("\n3\n"), []byte("\n2\n"), 1), problem: runtime.CheckpointBadSignature},
		{name: "not a note", msg: []byte("hello"), problem: runtime.CheckpointMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := rt.VerifyCheckpoint(ctx, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Chain.OK || rep.Chain.HeadSeq != 5 {
				t.Errorf("chain %+v", rep.Chain)
			}
			cc := rep.Checkpoint
			if cc.Problem != tc.problem || cc.OK != (tc.problem == runtime.CheckpointOK) || rep.OK() != cc.OK || cc.Seq != tc.seq {
				t.Fatalf("checkpoint %+v; want problem %q", cc, tc.problem)
			}
			if cc.OK && (cc.SignedBy != "ops" || cc.Size != 3 || cc.Hash != c.Hash) {
				t.Errorf("checkpoint %+v", cc)
			}
			if !cc.OK && cc.Reason == "" {
				t.Error("no reason")
			}
		})
	}

	// Another runtime on the same kind of chain trusts only its configured
	// keys: the signer's key is not among them.
	rt2 := runtimetest.Open(t, runtime.Config{DBPath: filepath.Join(t.TempDir(), "a.db"), CheckpointVerifierKeys: []string{other.VerifierKey()}, NoBundledTools: true})
	appendEnvelopes(t, rt2, 3)
	rep, err := rt2.VerifyCheckpoint(ctx, msg)
	if err != nil || rep.Checkpoint.Problem != runtime.CheckpointUntrustedKey {
		t.Errorf("rt2: %+v, %v", rep.Checkpoint, err)
	}
	// Same origin, same size, another chain: the hash at seq 3 differs.
	rep, err = rt2.VerifyCheckpoint(ctx, byOther)
	if err != nil || rep.Checkpoint.Problem != runtime.CheckpointHashMismatch || rep.Checkpoint.Seq != 3 || !strings.Contains(rep.Checkpoint.Reason, "hash at seq 3 differs") {
		t.Errorf("rt2 other chain: %+v, %v", rep.Checkpoint, err)
	}
	// Longer than the chain: truncated.
	long, _ := other.Sign(checkpoint.Checkpoint{Origin: "nano-vm-mcp/a.db", Size: 9, Hash: c.Hash})
	rep, err = rt2.VerifyCheckpoint(ctx, long)
	if err != nil || rep.Checkpoint.Problem != runtime.CheckpointTruncated || rep.Checkpoint.Seq != 4 || !strings.Contains(rep.Checkpoint.Reason, "truncated at seq 4") {
		t.Errorf("rt2 truncated: %+v, %v", rep.Checkpoint, err)
	}
}

// Ensure signing refuses what it must: no key, an empty chain, a broken
// chain, and a chain that no longer extends the previous checkpoint; and
// that verifying with no verifier key configured is an error naming the
// setting, never a pass.
func TestSignCheckpointRefuses(t *testing.T) {
	ctx := context.Background()
	bare := runtimetest.Open(t, runtime.Config{NoBundledTools: true})
	appendEnvelopes(t, bare, 1)
	if _, _, err := bare.SignCheckpoint(ctx, true, nil); !isCode(err, runtime.CodeCheckpointNotConfigured) {
		t.Errorf("no signer: %v", err)
	}
	if _, err := bare.VerifyCheckpoint(ctx, []byte("x")); !isCode(err, runtime.CodeCheckpointNotConfigured) || !strings.Contains(err.Error(), "NANO_VM_MCP_CHECKPOINT_VERIFIER_KEY_FILE") {
		t.Errorf("no verifier: %v", err)
	}

	rt := runtimetest.Open(t, runtime.Config{CheckpointSigner: runtimetest.Signer(t, "ops"), NoBundledTools: true})
	if _, _, err := rt.SignCheckpoint(ctx, false, nil); !errors.Is(err, runtime.ErrEmptyChain) {
		t.Errorf("empty chain: %v", err)
	}
	appendEnvelopes(t, rt, 2)
	_, c, err := rt.SignCheckpoint(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendEnvelopes(t, rt, 1)
	if _, c2, err := rt.SignCheckpoint(ctx, false, &c); err != nil || c2.Size != 3 {
		t.Errorf("extending: %+v, %v", c2, err)
	}
	for _, prev := range []checkpoint.Checkpoint{
		{Origin: c.Origin, Size: 2, Hash: strings.Repeat("0", 64)},
		{Origin: c.Origin, Size: 4, Hash: c.Hash},
	} {
		if _, _, err := rt.SignCheckpoint(ctx, false, &prev); err == nil || !strings.Contains(err.Error(), "no longer extends") {
			t.Errorf("prev %+v: %v", prev, err)
		}
	}
	if _, err := runtime.Open(ctx, runtime.Config{DBPath: filepath.Join(t.TempDir(), "x.db"), CheckpointOrigin: "two\nlines", NoBundledTools: true}); err == nil {
		t.Error("Open accepted an origin with a newline")
	}
	if _, err := runtime.Open(ctx, runtime.Config{DBPath: filepath.Join(t.TempDir(), "x.db"), CheckpointVerifierKeys: []string{"bogus"}, NoBundledTools: true}); !errors.Is(err, checkpoint.ErrKey) {
		t.Errorf("Open with a bogus verifier key: %v", err)
	}
}

func isCode(err error, code string) bool {
	e, ok := runtime.AsError(err)
	return ok && e.Code == code
}
