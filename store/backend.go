package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"time"
)

// This file is what another Store implementation (store/postgres) shares
// with the bbolt one, so that both write the same bytes, hash them alike
// and refuse the same inputs.

// PreparedEnvelope is a validated envelope draft ready to be linked onto
// the chain: the fields the store assigns (Seq, RecordedAt, PrevHash,
// Hash) are filled in by Link, the rest were canonicalized by
// PrepareEnvelope.
type PreparedEnvelope struct{ s *sealer }

// PrepareEnvelope validates a draft (a negative step index, a payload that
// is not canonical-able JSON are refused) and canonicalizes its payload. A
// missing Kind is EnvelopeKindStep.
func PrepareEnvelope(draft Envelope) (*PreparedEnvelope, error) {
	s, err := newSealer(draft)
	if err != nil {
		return nil, err
	}
	return &PreparedEnvelope{s: s}, nil
}

// Draft returns the prepared draft.
func (p *PreparedEnvelope) Draft() Envelope { return p.s.d }

// Link returns the envelope linked after the chain head (prevSeq,
// prevHash), recorded at at, and the bytes to store for it: the same bytes
// the bbolt store writes, which ChainVerifier checks.
func (p *PreparedEnvelope) Link(prevSeq uint64, prevHash string, at time.Time) (Envelope, []byte, error) {
	return p.s.seal(chainHead{Seq: prevSeq, Hash: prevHash}, at)
}

// CheckRun validates a run record as PutRun and CommitStep
// do: ids the store can key by, JSON fields that are JSON.
func CheckRun(e Run) error { return checkRun(e) }

// EncodeRun returns a run record's stored bytes: json.Marshal(e) byte
// for byte, without reflection when e's raw fields are compact.
func EncodeRun(e *Run) ([]byte, error) { return encodeRun(e) }

// CheckStoreID validates an id the store keys by (what names it: program,
// run, tool): non-empty, at most MaxIDBytes, no NUL.
func CheckStoreID(what, id string) error { return checkID(what, id) }

// StatusPayload is the payload of an EnvelopeKindRun envelope.
func StatusPayload(status kernel.Status) []byte { return statusPayload(status) }

// KeyCheckStore is implemented by a store that many processes open with
// the vault key each was given (store/postgres): it keeps a value sealed
// with the key of the first, so that a process given another key is
// refused at start (CheckVaultKey) instead of sealing secrets no other
// replica can open.
type KeyCheckStore interface {
	// VaultKeyCheck stores check unless a check is stored already, and
	// returns the stored one.
	VaultKeyCheck(ctx context.Context, check []byte) ([]byte, error)
}

// ErrVaultKeyMismatch is returned by CheckVaultKey when the vault key
// does not open the database's key check: another key sealed its secrets.
var ErrVaultKeyMismatch = errors.New("the vault key does not match the database's")

var keyCheckAD = []byte("nano-vm-mcp/vault/key-check/v1")

// CheckVaultKey makes sure key is the key the database's secrets are
// sealed with: the first process to call it on a database records a value
// sealed with its key; every later one must open it. A mismatch is
// ErrVaultKeyMismatch.
func CheckVaultKey(ctx context.Context, st KeyCheckStore, key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("check vault key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("check vault key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("check vault key: %w", err)
	}
	mine := aead.Seal(nonce, nonce, keyCheckAD, keyCheckAD)
	stored, err := st.VaultKeyCheck(ctx, mine)
	if err != nil {
		return fmt.Errorf("check vault key: %w", err)
	}
	n := aead.NonceSize()
	if len(stored) < n {
		return fmt.Errorf("check vault key: %w: the stored key check is %d bytes", ErrCorrupt, len(stored))
	}
	if _, err := aead.Open(nil, stored[:n], stored[n:], keyCheckAD); err != nil {
		return fmt.Errorf("check vault key: %w: every replica must be given the same %s (the first replica to open this database sealed its key check with another key)", ErrVaultKeyMismatch, VaultKeyEnv)
	}
	return nil
}
