// Package checkpoint signs and opens audit checkpoints: the head of the
// envelope chain (its sequence number and hash), under the name of the log
// it belongs to, as a C2SP signed note (https://c2sp.org/signed-note)
// signed with an operator's Ed25519 key. The note's text has the shape of a
// C2SP tlog checkpoint (https://c2sp.org/tlog-checkpoint):
//
//	nano-vm-mcp/nano_vm_mcp.db
//	1234
//	3q2+7w8tL0k5W0bJwL2v1S0x1x5r0b2b8Q5b0c9a0bA=
//
//	— audit-2026 AbCdEf…
//
// The origin line names the chain, the size line is the head's sequence
// number (the chain's length), and the hash line is the head envelope's
// SHA-256 in standard base64. The hash is of the last envelope of a linear
// hash chain, not a Merkle tree root: a checkpoint proves a prefix of the
// chain, it does not offer inclusion or consistency proofs.
//
// Someone who can rewrite the database file can recompute every envelope
// and the whole chain verifies again; a checkpoint kept where they cannot
// reach it cannot be recomputed without the signer key, so a chain that no
// longer extends it is caught.
//
// # Invariants
//
//   - Parse(c.Text()) == c for every valid c, and Text is the only
//     encoding Parse accepts (one canonical form per checkpoint).
//   - Open returns a checkpoint only when the note carries a valid
//     signature by one of the given verifier keys.
package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Limits on what Parse and Open accept.
const (
	// MaxNoteSize is the largest signed note Open reads: a checkpoint is
	// about 200 bytes, a few signatures included.
	MaxNoteSize = 8 << 10
	// MaxOriginLength is the longest origin line, in bytes.
	MaxOriginLength = 256
)

// Errors. Each wraps the detail; test with errors.Is.
var (
	// ErrMalformed is returned when a note or its text is not a checkpoint
	// in the canonical form Text writes.
	ErrMalformed = errors.New("malformed checkpoint")
	// ErrUnverified is returned when a note carries no signature by any of
	// the verifier keys given (it may be signed by another key).
	ErrUnverified = errors.New("checkpoint not signed by a trusted key")
	// ErrBadSignature is returned when a signature by a trusted key does
	// not verify: the text or the signature was altered.
	ErrBadSignature = errors.New("checkpoint signature invalid")
	// ErrWrongOrigin is returned when a checkpoint names another chain.
	ErrWrongOrigin = errors.New("checkpoint origin does not match")
	// ErrKey is returned when a signer or verifier key is not in note's key
	// format.
	ErrKey = errors.New("bad checkpoint key")
)

// Checkpoint is the head of an audit chain.
type Checkpoint struct {
	// Origin names the chain, e.g. "nano-vm-mcp/nano_vm_mcp.db".
	Origin string `json:"origin"`
	// Size is the head envelope's sequence number: the chain's length.
	// Never 0 in a valid checkpoint (an empty chain has nothing to prove).
	Size uint64 `json:"size"`
	// Hash is the head envelope's hash, lowercase hex SHA-256 as
	// store.Envelope.Hash.
	Hash string `json:"hash"`
}

// Validate checks the fields Text encodes: a non-empty trimmed origin of
// printable UTF-8 up to MaxOriginLength bytes, a size over 0, a lowercase
// hex SHA-256 hash.
func (c Checkpoint) Validate() error {
	if c.Origin == "" {
		return fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	if len(c.Origin) > MaxOriginLength {
		return fmt.Errorf("%w: origin of %d bytes is over the %d-byte limit", ErrMalformed, len(c.Origin), MaxOriginLength)
	}
	if !utf8.ValidString(c.Origin) || strings.TrimSpace(c.Origin) != c.Origin {
		return fmt.Errorf("%w: origin %q is not trimmed UTF-8", ErrMalformed, c.Origin)
	}
	for _, r := range c.Origin {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: origin %q holds a control character", ErrMalformed, c.Origin)
		}
	}
	if c.Size == 0 {
		return fmt.Errorf("%w: size 0 (an empty chain has no head)", ErrMalformed)
	}
	if b, err := hex.DecodeString(c.Hash); err != nil || len(b) != 32 || hex.EncodeToString(b) != c.Hash {
		return fmt.Errorf("%w: hash %q is not lowercase hex SHA-256", ErrMalformed, clip(c.Hash))
	}
	return nil
}

// Text returns the note text: origin, size and base64 hash lines.
func (c Checkpoint) Text() (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("checkpoint text: %w", err)
	}
	b, _ := hex.DecodeString(c.Hash)
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(b) + "\n", nil
}

// Parse reads a note text Text wrote. It accepts nothing else: no
// extension lines (a signed claim no verifier checks would only mislead),
// no leading zeros, no unpadded or non-canonical base64.
func Parse(text string) (Checkpoint, error) {
	fail := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(text) > MaxNoteSize {
		return fail("%d bytes is over the %d-byte limit", len(text), MaxNoteSize)
	}
	if !strings.HasSuffix(text, "\n") {
		return fail("text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 {
		return fail("want 3 lines (origin, size, hash), got %d", len(lines))
	}
	size := lines[1]
	if size == "" || (size[0] == '0') || strings.TrimLeft(size, "0123456789") != "" {
		return fail("size %q is not a positive decimal without leading zeros", clip(size))
	}
	n, err := strconv.ParseUint(size, 10, 64)
	if err != nil {
		return fail("size %q: %v", clip(size), err)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != 32 || base64.StdEncoding.EncodeToString(raw) != lines[2] {
		return fail("hash %q is not the standard base64 of 32 bytes", clip(lines[2]))
	}
	c := Checkpoint{Origin: lines[0], Size: n, Hash: hex.EncodeToString(raw)}
	if err := c.Validate(); err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	return c, nil
}

// Signer signs checkpoints with one operator key.
type Signer struct {
	s     note.Signer
	vkey  string
	name  string
	nhash uint32
}

// NewSigner reads a signer key in note's format
// ("PRIVATE+KEY+<name>+<hash>+<keydata>", as GenerateKey writes).
// Surrounding white space is ignored.
func NewSigner(skey string) (*Signer, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		// Never echo the key: it is a secret.
		return nil, fmt.Errorf("checkpoint signer key: %w: not a note signer key (PRIVATE+KEY+name+hash+data)", ErrKey)
	}
	vkey, err := verifierKeyOf(skey, s.Name())
	if err != nil {
		return nil, err
	}
	return &Signer{s: s, vkey: vkey, name: s.Name(), nhash: s.KeyHash()}, nil
}

// verifierKeyOf derives the verifier key from an Ed25519 signer key: note
// does not export that step.
func verifierKeyOf(skey, name string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<keydata>: the name and hash hold no "+",
	// base64 keydata may.
	rest := strings.TrimPrefix(skey, "PRIVATE+KEY+")
	_, rest, _ = strings.Cut(rest, "+")
	_, rest, _ = strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("checkpoint signer key: %w: not an Ed25519 key", ErrKey)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", fmt.Errorf("checkpoint signer key: %w: %v", ErrKey, err)
	}
	return vkey, nil
}

// Name is the key's name, shown in the signature line.
func (s *Signer) Name() string { return s.name }

// VerifierKey is the public verifier key of the signer key.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns c as a signed note.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	text, err := c.Text()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: text}, s.s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// Verifier opens checkpoints signed by any of a set of operator keys.
type Verifier struct {
	list  note.Verifiers
	names []string
}

// NewVerifier accepts verifier keys in note's format
// ("<name>+<hash>+<keydata>"); several let a checkpoint signed with a
// retired key still verify.
func NewVerifier(vkeys ...string) (*Verifier, error) {
	if len(vkeys) == 0 {
		return nil, fmt.Errorf("checkpoint verifier: %w: no verifier key", ErrKey)
	}
	v := &Verifier{}
	var vs []note.Verifier
	for _, k := range vkeys {
		k = strings.TrimSpace(k)
		nv, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("checkpoint verifier key %q: %w: %v", clip(k), ErrKey, err)
		}
		vs = append(vs, nv)
		v.names = append(v.names, k)
	}
	v.list = note.VerifierList(vs...)
	return v, nil
}

// ParseVerifierKeys reads verifier keys, one a line; blank lines and lines
// starting with # are skipped.
func ParseVerifierKeys(data []byte) ([]string, error) {
	var keys []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "PRIVATE+KEY+") {
			return nil, fmt.Errorf("verifier keys: %w: a signer (private) key where a verifier key belongs", ErrKey)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("verifier keys: %w: no key found", ErrKey)
	}
	return keys, nil
}

// Open checks the note's signature against v, parses its text and checks
// that it names origin. It returns the checkpoint and the name of the key
// that signed it.
func (v *Verifier) Open(msg []byte, origin string) (Checkpoint, string, error) {
	if len(msg) > MaxNoteSize {
		return Checkpoint{}, "", fmt.Errorf("open checkpoint: %w: %d bytes is over the %d-byte limit", ErrMalformed, len(msg), MaxNoteSize)
	}
	n, err := note.Open(msg, v.list)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			var by []string
			for _, s := range unverified.Note.UnverifiedSigs {
				by = append(by, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, "", fmt.Errorf("open checkpoint: %w (signed by %s; trusted: %s)", ErrUnverified, clip(strings.Join(by, ", ")), strings.Join(v.names, ", "))
		case errors.As(err, &invalid):
			return Checkpoint{}, "", fmt.Errorf("open checkpoint: %w: the signature by %s+%08x does not match the text", ErrBadSignature, invalid.Name, invalid.Hash)
		}
		return Checkpoint{}, "", fmt.Errorf("open checkpoint: %w: %v", ErrMalformed, err)
	}
	c, err := Parse(n.Text)
	if err != nil {
		return Checkpoint{}, "", err
	}
	if c.Origin != origin {
		return Checkpoint{}, "", fmt.Errorf("open checkpoint: %w: it is for %q, this chain is %q", ErrWrongOrigin, c.Origin, origin)
	}
	return c, n.Sigs[0].Name, nil
}

// GenerateKey returns a new Ed25519 signer key and its verifier key, both
// in note's format, for a key called name (no spaces, no "+").
func GenerateKey(name string) (skey, vkey string, err error) {
	if name == "" || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsSpace) >= 0 || strings.Contains(name, "+") {
		return "", "", fmt.Errorf("generate checkpoint key %q: %w: a key name is non-empty UTF-8 with no spaces and no \"+\"", clip(name), ErrKey)
	}
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generate checkpoint key %q: %w: %v", name, ErrKey, err)
	}
	return skey, vkey, nil
}

// clip bounds a value echoed in an error.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("…(%d bytes)", len(s))
}
