package runtime

import (
	"net/url"
	"strings"

	"context"
	"errors"
	"fmt"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"path/filepath"

	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
	"github.com/nanovm/nano-vm-mcp/store"
)

// CodeCheckpointNotConfigured is the error code of a checkpoint operation
// the operator has not configured a key for.
const CodeCheckpointNotConfigured = "checkpoint_not_configured"

// CheckpointProblem says why a checkpoint does not hold. The zero value
// (CheckpointOK) means it does.
type CheckpointProblem string

// Checkpoint problems VerifyCheckpoint reports.
const (
	// CheckpointOK: the chain verifies and extends the checkpoint.
	CheckpointOK CheckpointProblem = ""
	// CheckpointMalformed: the note or its text is not a checkpoint.
	CheckpointMalformed CheckpointProblem = "malformed"
	// CheckpointUntrustedKey: no signature by a configured verifier key.
	CheckpointUntrustedKey CheckpointProblem = "untrusted key"
	// CheckpointBadSignature: a trusted key's signature does not verify
	// (the text or the signature was altered).
	CheckpointBadSignature CheckpointProblem = "bad signature"
	// CheckpointWrongOrigin: the checkpoint names another chain.
	CheckpointWrongOrigin CheckpointProblem = "wrong origin"
	// CheckpointTruncated: the chain is shorter than the checkpoint.
	CheckpointTruncated CheckpointProblem = "truncated"
	// CheckpointHashMismatch: the envelope at the checkpoint's seq has
	// another hash: the chain up to there was rewritten since.
	CheckpointHashMismatch CheckpointProblem = "hash mismatch"
	// CheckpointChainBroken: the chain itself does not verify.
	CheckpointChainBroken CheckpointProblem = "chain broken"
)

// CheckpointCheck is what VerifyCheckpoint found about one checkpoint.
type CheckpointCheck struct {
	// OK is true when the checkpoint is signed by a trusted key, names
	// this chain, the envelope at its seq has its hash, and the whole chain
	// verifies from seq 1 to the head.
	OK bool `json:"ok"`
	// Origin, Size and Hash are the checkpoint's (once its signature
	// verified); Hash is lowercase hex.
	Origin string `json:"origin,omitempty"`
	Size   uint64 `json:"size,omitempty"`
	Hash   string `json:"hash,omitempty"`
	// SignedBy is the name of the key whose signature verified.
	SignedBy string `json:"signed_by,omitempty"`
	// Problem classifies a failure; empty when OK.
	Problem CheckpointProblem `json:"problem,omitempty"`
	// Seq is where the chain diverges from the checkpoint (0 when the
	// failure is the note itself).
	Seq uint64 `json:"seq,omitempty"`
	// Reason says what is wrong.
	Reason string `json:"reason,omitempty"`
}

// CheckpointReport is the outcome of VerifyCheckpoint.
type CheckpointReport struct {
	// Chain is the whole chain's verification, as VerifyAudit("").
	Chain store.VerifyReport `json:"chain"`
	// Checkpoint is the checkpoint's.
	Checkpoint CheckpointCheck `json:"checkpoint"`
}

// OK is true when both the chain and the checkpoint hold.
func (r CheckpointReport) OK() bool { return r.Chain.OK && r.Checkpoint.OK }

// initCheckpoints validates the checkpoint configuration once, in Open.
func (rt *Runtime) initCheckpoints() error {
	rt.cpOrigin = rt.cfg.CheckpointOrigin
	if rt.cpOrigin == "" {
		rt.cpOrigin = DefaultCheckpointOrigin(rt.cfg.DBPath)
	}
	if err := (checkpoint.Checkpoint{Origin: rt.cpOrigin, Size: 1, Hash: fmt.Sprintf("%064x", 0)}).Validate(); err != nil {
		return fmt.Errorf("checkpoint origin: %w", err)
	}
	keys := rt.cfg.CheckpointVerifierKeys
	if len(keys) == 0 && rt.cfg.CheckpointSigner != nil {
		keys = []string{rt.cfg.CheckpointSigner.VerifierKey()}
	}
	if len(keys) > 0 {
		v, err := checkpoint.NewVerifier(keys...)
		if err != nil {
			return err
		}
		rt.cpVerifier = v
	}
	return nil
}

// DefaultCheckpointOrigin is the origin of a chain whose operator named
// none: "nano-vm-mcp/" and the database file's base name.
// A PostgreSQL database (a postgres:// address) is named by its host and
// database name, never its user or password.
func DefaultCheckpointOrigin(dbPath string) string {
	if postgres.IsDSN(dbPath) {
		if u, err := url.Parse(dbPath); err == nil {
			host := u.Host
			if host == "" {
				host = "localhost"
			}
			return "nano-vm-mcp/" + host + strings.TrimSuffix(u.Path, "/")
		}
		return "nano-vm-mcp/postgres"
	}
	return "nano-vm-mcp/" + filepath.Base(dbPath)
}

// CheckpointOrigin is the name this chain's checkpoints carry.
func (rt *Runtime) CheckpointOrigin() string { return rt.cpOrigin }

// SignCheckpoint signs the chain's head with the configured signer key.
//
// With verify, the whole chain is verified first, a broken chain is
// refused, and the head verified is signed. Without, the recorded head is
// signed as it is, in O(1): for the periodic checkpoints of the process
// that appended the envelopes since the last one.
//
// prev, when set, is a checkpoint the new one must extend: when the
// envelope at prev.Size no longer has prev.Hash (the chain was rewritten
// or truncated since), signing is refused, so that a checkpoint file
// holding the evidence is never replaced by one of the rewritten chain.
func (rt *Runtime) SignCheckpoint(ctx context.Context, verify bool, prev *checkpoint.Checkpoint) ([]byte, checkpoint.Checkpoint, error) {
	if rt.cfg.CheckpointSigner == nil {
		return nil, checkpoint.Checkpoint{}, newError(CodeCheckpointNotConfigured, nil, "sign checkpoint: no signer key configured (NANO_VM_MCP_CHECKPOINT_KEY_FILE)")
	}
	var seq uint64
	var hash string
	if verify {
		rep, err := rt.store.VerifyChain(ctx, "")
		if err != nil {
			return nil, checkpoint.Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
		}
		if !rep.OK {
			return nil, checkpoint.Checkpoint{}, fmt.Errorf("sign checkpoint: refused: the audit chain is broken at seq %d (%s): %s", rep.Broken.Seq, rep.Broken.Problem, rep.Broken.Reason)
		}
		seq, hash = rep.HeadSeq, rep.HeadHash
	} else {
		var err error
		if seq, hash, err = rt.store.Head(ctx); err != nil {
			return nil, checkpoint.Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
		}
	}
	if seq == 0 {
		return nil, checkpoint.Checkpoint{}, fmt.Errorf("sign checkpoint: %w", ErrEmptyChain)
	}
	if prev != nil {
		if c := rt.extends(ctx, *prev, seq); !c.OK {
			return nil, checkpoint.Checkpoint{}, fmt.Errorf("sign checkpoint: refused: the chain no longer extends the previous checkpoint (seq %d): %s", prev.Size, c.Reason)
		}
	}
	c := checkpoint.Checkpoint{Origin: rt.cpOrigin, Size: seq, Hash: hash}
	msg, err := rt.cfg.CheckpointSigner.Sign(c)
	if err != nil {
		return nil, checkpoint.Checkpoint{}, err
	}
	return msg, c, nil
}

// ErrEmptyChain is returned by SignCheckpoint when the chain has no
// envelope yet: there is no head to sign.
var ErrEmptyChain = errors.New("the audit chain is empty: nothing to checkpoint")

// OpenCheckpoint checks a signed checkpoint's signature against the
// configured verifier keys and its origin against this chain's, and
// returns it with the name of the key that signed it.
func (rt *Runtime) OpenCheckpoint(msg []byte) (checkpoint.Checkpoint, string, error) {
	if rt.cpVerifier == nil {
		return checkpoint.Checkpoint{}, "", newError(CodeCheckpointNotConfigured, nil, "verify checkpoint: no verifier key configured (NANO_VM_MCP_CHECKPOINT_VERIFIER_KEY_FILE, or a signer key NANO_VM_MCP_CHECKPOINT_KEY_FILE): a key sent along with the checkpoint would prove nothing")
	}
	return rt.cpVerifier.Open(msg, rt.cpOrigin)
}

// VerifyCheckpoint proves the current chain extends a signed checkpoint:
// the signature is by a configured verifier key, the origin is this
// chain's, the envelope at the checkpoint's seq has exactly its hash, and
// the whole chain verifies from seq 1 to the head. Otherwise the report
// names the problem and, where the chain diverges, the seq. An error means
// the check could not run (or no verifier key is configured).
func (rt *Runtime) VerifyCheckpoint(ctx context.Context, msg []byte) (CheckpointReport, error) {
	var rep CheckpointReport
	c, by, err := rt.OpenCheckpoint(msg)
	if err != nil {
		if _, ok := AsError(err); ok {
			return rep, err
		}
		rep.Checkpoint = CheckpointCheck{Problem: problemOf(err), Reason: err.Error()}
	}
	if rep.Chain, err = rt.store.VerifyChain(ctx, ""); err != nil {
		return CheckpointReport{}, err
	}
	if rep.Checkpoint.Problem != CheckpointOK {
		return rep, nil
	}
	head := rep.Chain.HeadSeq
	if rep.Chain.Broken != nil {
		head = 0 // unknown: extends reads it
	}
	rep.Checkpoint = rt.extends(ctx, c, head)
	rep.Checkpoint.SignedBy = by
	if rep.Checkpoint.OK && !rep.Chain.OK && rep.Chain.Broken == nil {
		// The envelopes hold and extend the checkpoint, but stored records
		// no longer match them.
		n := len(rep.Chain.Records) + rep.Chain.RecordsOmitted
		rep.Checkpoint.OK, rep.Checkpoint.Problem = false, CheckpointChainBroken
		rep.Checkpoint.Reason = fmt.Sprintf("the envelopes extend the checkpoint, but %d stored record(s) do not match their envelopes", n)
	}
	if rep.Checkpoint.OK && rep.Chain.Broken != nil {
		b := rep.Chain.Broken
		where := "after the checkpoint's head: the checkpointed prefix holds, the rest does not"
		if b.Seq <= c.Size {
			where = fmt.Sprintf("at or before the checkpoint's seq %d", c.Size)
		}
		rep.Checkpoint.OK, rep.Checkpoint.Problem, rep.Checkpoint.Seq = false, CheckpointChainBroken, b.Seq
		rep.Checkpoint.Reason = fmt.Sprintf("the chain is broken at seq %d (%s), %s", b.Seq, b.Problem, where)
	}
	return rep, nil
}

// CheckExtends checks, in O(1), that the chain still holds c's head: the
// envelope at c.Size has c.Hash. It does not verify the chain (see
// VerifyCheckpoint) nor c's signature (see OpenCheckpoint).
func (rt *Runtime) CheckExtends(ctx context.Context, c checkpoint.Checkpoint) CheckpointCheck {
	return rt.extends(ctx, c, 0)
}

// extends checks, in O(1), that the chain still holds c's head at c.Size.
// head is the chain's head seq, or 0 to read it.
func (rt *Runtime) extends(ctx context.Context, c checkpoint.Checkpoint, head uint64) CheckpointCheck {
	out := CheckpointCheck{Origin: c.Origin, Size: c.Size, Hash: c.Hash}
	fail := func(p CheckpointProblem, seq uint64, format string, args ...any) CheckpointCheck {
		out.Problem, out.Seq, out.Reason = p, seq, fmt.Sprintf(format, args...)
		return out
	}
	if head == 0 {
		seq, _, err := rt.store.Head(ctx)
		if err != nil {
			return fail(CheckpointChainBroken, 0, "the chain head cannot be read: %v", err)
		}
		head = seq
	}
	if head < c.Size {
		return fail(CheckpointTruncated, head+1, "truncated at seq %d: the chain ends at seq %d, the checkpoint covers seq %d", head+1, head, c.Size)
	}
	env, err := rt.store.Envelope(ctx, c.Size)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail(CheckpointTruncated, c.Size, "truncated: seq %d is missing, the checkpoint covers it", c.Size)
	case err != nil:
		return fail(CheckpointHashMismatch, c.Size, "hash at seq %d differs: the envelope cannot be read: %v", c.Size, err)
	case env.Hash != c.Hash:
		return fail(CheckpointHashMismatch, c.Size, "hash at seq %d differs: the chain holds %s, the checkpoint signed %s: the chain up to seq %d was rewritten since the checkpoint", c.Size, env.Hash, c.Hash, c.Size)
	}
	out.OK = true
	return out
}

func problemOf(err error) CheckpointProblem {
	switch {
	case errors.Is(err, checkpoint.ErrUnverified):
		return CheckpointUntrustedKey
	case errors.Is(err, checkpoint.ErrBadSignature):
		return CheckpointBadSignature
	case errors.Is(err, checkpoint.ErrWrongOrigin):
		return CheckpointWrongOrigin
	}
	return CheckpointMalformed
}
