package mcpserver

import (
	"context"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure verify_audit given a checkpoint checks it against the server's
// configured key only: a checkpoint the chain extends passes, one signed
// by any other key fails with ok false and the problem named, and a
// server with no key configured refuses with a tool error naming the
// setting.
func TestVerifyAuditCheckpoint(t *testing.T) {
	ctx := context.Background()
	ops := runtimetest.Signer(t, "ops")
	s := newServerConfig(t, runtime.Config{CheckpointSigner: ops, NoBundledTools: true}, nil)
	c, _ := inProcess(t, s)
	for range 3 {
		if _, err := s.rt.Store().AppendEnvelope(ctx, store.Envelope{Kind: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	msg, ck, err := s.rt.SignCheckpoint(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"checkpoint": string(msg)}))
	cp, _ := got["checkpoint"].(map[string]any)
	if got["ok"] != true || got["scope"] != "chain and checkpoint" || cp["ok"] != true || cp["signed_by"] != "ops" || cp["size"] != float64(3) || cp["hash"] != ck.Hash {
		t.Fatalf("verify_audit with its checkpoint: %v", got)
	}

	forged, _ := runtimetest.Signer(t, "ops").Sign(ck)
	got = ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"checkpoint": string(forged)}))
	cp, _ = got["checkpoint"].(map[string]any)
	if got["ok"] != false || cp["ok"] != false || cp["problem"] != "untrusted key" || !strings.Contains(cp["reason"].(string), "not signed by a trusted key") {
		t.Fatalf("verify_audit with another key's checkpoint: %v", got)
	}
	if e := toolErr(t, "verify_audit", call(t, c, "verify_audit", map[string]any{"checkpoint": string(msg), "trace_id": "x"})); e["error"] != "invalid_argument" {
		t.Fatalf("checkpoint with execution_id: %v", e)
	}

	bare := newServerConfig(t, runtime.Config{NoBundledTools: true}, nil)
	bc, _ := inProcess(t, bare)
	if e := toolErr(t, "verify_audit", call(t, bc, "verify_audit", map[string]any{"checkpoint": string(msg)})); e["error"] != runtime.CodeCheckpointNotConfigured || !strings.Contains(e["message"].(string), "NANO_VM_MCP_CHECKPOINT_VERIFIER_KEY_FILE") {
		t.Fatalf("no key configured: %v", e)
	}
}
