package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	bolt "go.etcd.io/bbolt"
)

// Envelope kinds.
const (
	// EnvelopeKindStep records one successful step.
	EnvelopeKindStep = "step"
	// EnvelopeKindErase records the erasure of a secret.
	EnvelopeKindErase = "erase"
	// EnvelopeKindRun records a rewrite of a run's record
	// that no step commit carried (PutRun of an existing record: a
	// run that ends without a step, say). Its value keeps the older word:
	// it is hashed into every such envelope (docs/glossary.md, legacy
	// names on disk).
	EnvelopeKindRun = "execution"
	// EnvelopeKindDelete records the deletion of a run's records
	// (DeleteProgram): verify then expects them gone.
	EnvelopeKindDelete = "delete"
)

// GenesisHash is the PrevHash of the first envelope (seq 1): the empty
// string, so the first link needs no magic constant.
const GenesisHash = ""

// Envelope is one link of the global audit chain. Envelopes are never
// updated or deleted.
type Envelope struct {
	// Seq numbers the chain from 1 with no gaps; assigned by the store.
	Seq uint64 `json:"seq"`
	// Kind is EnvelopeKindStep or another event kind (EnvelopeKindErase).
	Kind string `json:"kind"`
	// TraceID is the run the envelope belongs to; empty for events
	// that belong to no run. Its JSON name keeps the older word: the
	// envelope's hash covers it.
	TraceID string `json:"execution_id"`
	// StepIndex is the step's index in the trace.
	StepIndex int `json:"step_index"`
	// StepID is the step's id in the program.
	StepID string `json:"step_id"`
	// PolicyHash is the hash of the policy snapshot the step ran under.
	PolicyHash string `json:"policy_hash"`
	// StateHash is the canonical hash of the state after the step.
	StateHash string `json:"state_hash"`
	// Payload is the TRACE projection of the step's output: refs, never
	// secret values.
	Payload json.RawMessage `json:"payload"`
	// ModuleSHA256 is the SHA-256 of the module a tool step ran.
	ModuleSHA256 string `json:"module_sha256,omitempty"`
	// ManifestSHA256 is the SHA-256 of the manifest a tool step ran under.
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	// RecordSHA256 is the SHA-256 (RecordSHA256) of the step record's
	// stored bytes, exactly as Steps returns them; assigned by the store
	// for a step commit.
	RecordSHA256 string `json:"record_sha256,omitempty"`
	// RunSHA256 is the SHA-256 of the run record's stored
	// bytes as written in the same transaction (status, header with the
	// final output and error); assigned by the store whenever the
	// envelope's transaction rewrote the record, empty otherwise. Its
	// JSON name keeps the older word: the envelope's hash covers it.
	RunSHA256 string `json:"execution_sha256,omitempty"`
	// RunStatus is the status the run record RunSHA256 commits to holds,
	// set by the store with RunSHA256 (empty in envelopes written before
	// it was added). Verify takes a terminal status as the run's end: no
	// writer commits to the run after it, so a later envelope that does is
	// a re-seal (see .rationale/storage.md "Why is a finished run's record
	// sealed once?").
	RunStatus string `json:"run_status,omitempty"`
	// InputSHA256 and ProgramSHA256 are the SHA-256 of the run's
	// input and program as stored (Run returns them byte for byte
	// as they were put). The caller sets them on a run's first step
	// envelope (index 0); verify checks every envelope that carries them.
	InputSHA256   string `json:"input_sha256,omitempty"`
	ProgramSHA256 string `json:"program_sha256,omitempty"`
	// RecordedAt is when the envelope was appended (UTC); assigned by the
	// store.
	RecordedAt time.Time `json:"recorded_at"`
	// PrevHash is the Hash of envelope Seq-1, GenesisHash for Seq 1;
	// assigned by the store.
	PrevHash string `json:"prev_hash"`
	// Hash is the lowercase hex SHA-256 of the RFC 8785 canonical JSON of
	// every other field; assigned by the store.
	Hash string `json:"hash"`
}

// ComputeHash returns the hash e.Hash should hold: SHA-256 over the
// canonical JSON of every field but Hash.
func (e *Envelope) ComputeHash() (string, error) {
	m := map[string]any{
		"seq":          e.Seq,
		"kind":         e.Kind,
		"execution_id": e.TraceID,
		"step_index":   e.StepIndex,
		"step_id":      e.StepID,
		"policy_hash":  e.PolicyHash,
		"state_hash":   e.StateHash,
		"payload":      nil,
		"recorded_at":  e.RecordedAt.UTC().Format(time.RFC3339Nano),
		"prev_hash":    e.PrevHash,
	}
	if len(e.Payload) > 0 {
		m["payload"] = e.Payload
	}
	if e.ModuleSHA256 != "" {
		m["module_sha256"] = e.ModuleSHA256
	}
	if e.ManifestSHA256 != "" {
		m["manifest_sha256"] = e.ManifestSHA256
	}
	// The record hashes are absent from envelopes written before schema
	// 2, which therefore hash as they always did.
	for k, v := range map[string]string{
		"record_sha256": e.RecordSHA256, "execution_sha256": e.RunSHA256,
		"input_sha256": e.InputSHA256, "program_sha256": e.ProgramSHA256,
		"run_status": e.RunStatus,
	} {
		if v != "" {
			m[k] = v
		}
	}
	h, err := canonical.Hash(m)
	if err != nil {
		return "", fmt.Errorf("hash envelope %d: %w", e.Seq, err)
	}
	return h, nil
}

// RecordSHA256 returns the lowercase hex SHA-256 of a stored record's
// bytes: what an envelope's RecordSHA256, RunSHA256, InputSHA256
// and ProgramSHA256 hold.
func RecordSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// chainHead is the last envelope's seq and hash, kept in the meta bucket so
// appends need no cursor and so a deleted tail is detected.
type chainHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func readHead(tx *bolt.Tx) (chainHead, error) {
	var h chainHead
	v := tx.Bucket(bucketMeta).Get(keyChainHead)
	if v == nil {
		return h, nil
	}
	if err := json.Unmarshal(v, &h); err != nil {
		return h, fmt.Errorf("%w: chain head: %w", ErrCorrupt, err)
	}
	return h, nil
}

// chainHead returns the head as of this write transaction. The committer
// keeps it between appends of one transaction (a batch appends many), and
// between transactions (DB.head, as the last committed one left it), so
// only the first append after Open or an unsure outcome reads and decodes
// the stored head; every write transaction starts with its own cache
// cleared (see DB.write).
func (db *DB) chainHead(tx *bolt.Tx) (chainHead, error) {
	if db.txc.headOK {
		return db.txc.head, nil
	}
	if db.head.ok {
		db.txc.head, db.txc.headOK = db.head.h, true
		return db.head.h, nil
	}
	h, err := readHead(tx)
	if err != nil {
		return h, err
	}
	db.txc.head, db.txc.headOK = h, true
	return h, nil
}

// setChainHead makes h the head in the transaction's cache; DB.write
// stores it in the meta bucket before the transaction commits.
func (db *DB) setChainHead(h chainHead) {
	db.txc.head, db.txc.headOK, db.txc.headDirty = h, true, true
}

// putChainHead stores h as the head in tx.
func putChainHead(tx *bolt.Tx, h chainHead) error {
	// Seq is a number and Hash lowercase hex: nothing to escape.
	v := make([]byte, 0, 96)
	v = append(v, `{"seq":`...)
	v = strconv.AppendUint(v, h.Seq, 10)
	v = append(v, `,"hash":"`...)
	v = append(v, h.Hash...)
	v = append(v, `"}`...)
	return put(tx, bucketMeta, keyChainHead, v)
}

// prepareDraft validates a draft and canonicalizes its payload outside the
// transaction, so the committer only does the cheap part.
func prepareDraft(d Envelope) (Envelope, error) {
	if d.Kind == "" {
		d.Kind = EnvelopeKindStep
	}
	if d.StepIndex < 0 {
		return d, fmt.Errorf("append envelope: negative step index %d", d.StepIndex)
	}
	switch {
	case canonical.IsCanonical(d.Payload):
		// Kept as given (the runtime writes its payloads canonical):
		// the sealer copies it into the bytes it stores and hashes.
	case len(d.Payload) > 0:
		p, err := canonical.Marshal(d.Payload)
		if err != nil {
			return d, fmt.Errorf("append envelope: payload: %w", err)
		}
		d.Payload = p
	default:
		d.Payload = json.RawMessage("null")
	}
	d.Seq, d.PrevHash, d.Hash, d.RecordedAt = 0, "", "", time.Time{}
	return d, nil
}

// appendEnvelope links a prepared envelope onto the chain inside tx. It
// reads the head through the transaction, so a re-run of the batch
// recomputes the same result.
func (db *DB) appendEnvelope(tx *bolt.Tx, s *sealer) (Envelope, error) {
	head, err := db.chainHead(tx)
	if err != nil {
		return Envelope{}, err
	}
	d, v, err := s.seal(head, db.now())
	if err != nil {
		return d, err
	}
	// Seqs only grow: put fills the pages completely (appendOnly).
	if err := put(tx, bucketEnvelopes, u64(d.Seq), v); err != nil {
		return d, fmt.Errorf("put envelope %d: %w", d.Seq, err)
	}
	if d.TraceID != "" {
		if err := put(tx, bucketEnvRun, joinKey(d.TraceID, d.Seq), nil); err != nil {
			return d, fmt.Errorf("index envelope %d: %w", d.Seq, err)
		}
	}
	db.setChainHead(chainHead{Seq: d.Seq, Hash: d.Hash})
	return d, nil
}

// AppendEnvelope implements AuditStore.
func (db *DB) AppendEnvelope(ctx context.Context, draft Envelope) (Envelope, error) {
	s, err := newSealer(draft)
	if err != nil {
		return Envelope{}, err
	}
	var out Envelope
	err = db.update(ctx, func(tx *bolt.Tx) error {
		e, err := db.appendEnvelope(tx, s)
		out = e
		return err
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("append envelope: %w", err)
	}
	return out, nil
}

// Envelope implements AuditStore.
func (db *DB) Envelope(ctx context.Context, seq uint64) (Envelope, error) {
	var e Envelope
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEnvelopes).Get(u64(seq))
		if v == nil {
			return ErrNotFound
		}
		return decodeRecord(v, &e)
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("envelope %d: %w", seq, err)
	}
	return e, nil
}

// Envelopes implements AuditStore.
func (db *DB) Envelopes(ctx context.Context, traceID string) ([]Envelope, error) {
	var out []Envelope
	err := db.view(ctx, func(tx *bolt.Tx) error {
		envs := tx.Bucket(bucketEnvelopes)
		prefix := append([]byte(traceID), 0)
		c := tx.Bucket(bucketEnvRun).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: envelope index key of %d bytes", ErrCorrupt, len(k))
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			v := envs.Get(u64(seq))
			if v == nil {
				return fmt.Errorf("%w: envelope %d indexed but missing", ErrCorrupt, seq)
			}
			var e Envelope
			if err := decodeRecord(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("envelopes of %q: %w", traceID, err)
	}
	return out, nil
}

// decodeRecord decodes a stored JSON record; undecodable bytes are
// corruption, not a caller error.
func decodeRecord(v []byte, into any) error {
	if err := json.Unmarshal(v, into); err != nil {
		return fmt.Errorf("%w: decode %T: %w", ErrCorrupt, into, err)
	}
	return nil
}

// StepEnvelope returns the envelope of step index of a run: the first
// step envelope of the run carrying that index (a second one is a
// re-commitment, which VerifyChain reports), ErrNotFound when none does.
// It is not part of Store: a reader that shows one step (the run viewer)
// uses it when the backend has it, and Envelopes otherwise.
//
// A run's step envelopes are appended in index order, one per step, so
// step index's is usually the run's envelope at that position: it is
// decoded first, and the ones after it until a step envelope of a higher
// index; only a run whose envelopes are out of that order (an envelope of
// kind execution or delete before its steps, or a tampered file) costs a
// decode of every one. The run's index keys are walked either way; they
// are not decoded.
func (db *DB) StepEnvelope(ctx context.Context, traceID string, index int) (Envelope, error) {
	var out Envelope
	err := db.view(ctx, func(tx *bolt.Tx) error {
		envs := tx.Bucket(bucketEnvelopes)
		prefix := append([]byte(traceID), 0)
		var seqs []uint64
		c := tx.Bucket(bucketEnvRun).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: envelope index key of %d bytes", ErrCorrupt, len(k))
			}
			seqs = append(seqs, binary.BigEndian.Uint64(k[len(prefix):]))
		}
		at := func(i int) (Envelope, error) {
			var e Envelope
			v := envs.Get(u64(seqs[i]))
			if v == nil {
				return e, fmt.Errorf("%w: envelope %d indexed but missing", ErrCorrupt, seqs[i])
			}
			return e, decodeRecord(v, &e)
		}
		for i := max(index, 0); i < len(seqs); i++ {
			e, err := at(i)
			if err != nil {
				return err
			}
			if e.Kind != EnvelopeKindStep {
				continue
			}
			if e.StepIndex == index {
				out = e
				return nil
			}
			if e.StepIndex > index {
				break
			}
		}
		// Out of the usual order: look at every one, in seq order.
		for i := range seqs {
			e, err := at(i)
			if err != nil {
				return err
			}
			if e.Kind == EnvelopeKindStep && e.StepIndex == index {
				out = e
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("envelope of step %d of %q: %w", index, traceID, err)
	}
	return out, nil
}
