package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
)

// maxExactInt is the largest integer RFC 8785 prints as plain digits (the
// IEEE 754 double range in which every integer is exact).
const maxExactInt = 1 << 53

// sealer holds a prepared envelope's canonical JSON split around the three
// fields the store assigns inside the write transaction (prev_hash,
// recorded_at, seq; nearly adjacent in canonical key order), so the single
// committer only splices them in and hashes: the canonicalization of the
// payload and the other fields happens in the caller's goroutine.
//
// The result is byte-for-byte what Envelope.ComputeHash hashes; the stored
// value is that canonical JSON with "hash" added first, so one encoding
// serves both. TestSealMatchesComputeHash and FuzzSeal hold the two paths
// together.
type sealer struct {
	d      Envelope
	head   []byte // {"execution_id":…,"policy_hash":…,"prev_hash":
	mid    []byte // [,"program_sha256":…][,"record_sha256":…],"recorded_at":"
	status []byte // "[,"run_status":…],"seq":
	tail   []byte // ,"state_hash":…,"step_id":…,"step_index":N}
}

// newSealer validates and prepares a draft (see prepareDraft).
func newSealer(draft Envelope) (*sealer, error) {
	d, err := prepareDraft(draft)
	if err != nil {
		return nil, err
	}
	s := new(sealer)
	if err := s.init(d, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// sealerCap is the room a sealer of the prepared draft d takes: every
// field as it usually is (hex hashes, short ids) besides the payload, so
// it is not grown: about 160 bytes before prev_hash and 265 after it, and
// the variable parts.
func sealerCap(d *Envelope) int {
	return 160 + len(d.Payload) + len(d.TraceID) + len(d.Kind) + len(d.PolicyHash) +
		len(d.RunSHA256) + len(d.RunStatus) + len(d.InputSHA256) + len(d.ModuleSHA256) + len(d.ManifestSHA256) +
		288 + len(d.StepID) + len(d.StateHash) + len(d.RunStatus)
}

// init fills s for the draft d, which prepareDraft returned. head, mid,
// status and tail share one buffer: b when its capacity holds
// sealerCap(&d) (a caller's allocation shared with other bytes of its
// own), else a new one.
func (s *sealer) init(d Envelope, b []byte) error {
	if d.StepIndex >= maxExactInt {
		return fmt.Errorf("append envelope: step index %d is too large", d.StepIndex)
	}
	s.d = d
	if n := sealerCap(&d); cap(b) < n {
		b = make([]byte, 0, n)
	}
	b = b[:0]
	var err error
	field := func(name, value string) {
		if err != nil {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b, err = appendStr(b, value)
	}
	b = append(b, `{"execution_id":`...)
	if b, err = appendStr(b, d.TraceID); err != nil {
		return err
	}
	if d.RunSHA256 != "" {
		field("execution_sha256", d.RunSHA256)
	}
	if d.InputSHA256 != "" {
		field("input_sha256", d.InputSHA256)
	}
	field("kind", d.Kind)
	if d.ManifestSHA256 != "" {
		field("manifest_sha256", d.ManifestSHA256)
	}
	if d.ModuleSHA256 != "" {
		field("module_sha256", d.ModuleSHA256)
	}
	if err != nil {
		return err
	}
	// prepareDraft made the payload canonical already. The envelope
	// keeps the sealer's copy, not the caller's bytes, which the caller
	// may reuse once the commit call returns (StepCommit.Envelope) while
	// the committer may still read s.d (a re-seal, sealSlow).
	b = append(b, `,"payload":`...)
	p := len(b)
	b = append(b, d.Payload...)
	s.d.Payload = b[p:len(b):len(b)]
	field("policy_hash", d.PolicyHash)
	if err != nil {
		return err
	}
	b = append(b, `,"prev_hash":`...)
	s.head = b[:len(b):len(b)]

	// Canonical order puts program_sha256 and record_sha256 between
	// prev_hash and recorded_at.
	b = b[len(b):]
	if d.ProgramSHA256 != "" {
		field("program_sha256", d.ProgramSHA256)
	}
	if d.RecordSHA256 != "" {
		field("record_sha256", d.RecordSHA256)
	}
	if err != nil {
		return err
	}
	b = append(b, `,"recorded_at":"`...)
	s.mid = b[:len(b):len(b)]

	// run_status sorts between recorded_at and seq: it closes the
	// recorded_at string, and seq follows it.
	t := b[len(b):]
	t = append(t, '"')
	if d.RunStatus != "" {
		t = append(t, `,"run_status":`...)
		if t, err = appendStr(t, d.RunStatus); err != nil {
			return err
		}
	}
	t = append(t, `,"seq":`...)
	s.status = t[:len(t):len(t)]

	t = t[len(t):]
	t = append(t, `,"state_hash":`...)
	if t, err = appendStr(t, d.StateHash); err != nil {
		return err
	}
	t = append(t, `,"step_id":`...)
	if t, err = appendStr(t, d.StepID); err != nil {
		return err
	}
	t = append(t, `,"step_index":`...)
	t = strconv.AppendInt(t, int64(d.StepIndex), 10)
	s.tail = append(t, '}')
	return nil
}

// seal links the envelope after head: it returns the complete envelope and
// the value to store under its seq.
func (s *sealer) seal(head chainHead, at time.Time) (Envelope, []byte, error) {
	d := s.d
	d.Seq = head.Seq + 1
	d.PrevHash = head.Hash
	d.RecordedAt = at.UTC()
	if d.Seq >= maxExactInt {
		return sealSlow(d)
	}
	// The stored value is {"hash":"<64 hex>", followed by the canonical
	// object without its '{': the canonical bytes are built in place after
	// room for the hash field, hashed, and their '{' becomes the ','.
	const hashField = `{"hash":"`
	n := len(hashField) + sha256.Size*2 + len(`",`)
	buf := make([]byte, n-1, n+len(s.head)+len(s.mid)+len(s.status)+len(s.tail)+128)
	var err error
	buf = append(buf, s.head...)
	if buf, err = appendStr(buf, d.PrevHash); err != nil {
		return d, nil, err
	}
	buf = append(buf, s.mid...)
	buf = d.RecordedAt.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, s.status...)
	buf = strconv.AppendUint(buf, d.Seq, 10)
	buf = append(buf, s.tail...)

	sum := sha256.Sum256(buf[n-1:])
	copy(buf, hashField)
	hex.Encode(buf[len(hashField):], sum[:])
	buf[n-2], buf[n-1] = '"', ','
	// From the hex just written: one allocation, where
	// hex.EncodeToString makes two.
	d.Hash = string(buf[len(hashField) : n-2])
	return d, buf, nil
}

// sealSlow seals d through ComputeHash and encoding/json, for a seq
// beyond the integers RFC 8785 prints as digits. It is a function of its
// own so that d's address, which the encoder takes, makes only this copy
// escape, not seal's on the common path.
func sealSlow(d Envelope) (Envelope, []byte, error) {
	h, err := d.ComputeHash()
	if err != nil {
		return d, nil, err
	}
	d.Hash = h
	// Without HTML escaping, so the payload is stored as prepared, as on
	// the spliced path.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&d); err != nil {
		return d, nil, err
	}
	return d, bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendStr appends s as canonical.Append does: directly when it is
// printable ASCII with nothing to escape (hex hashes, ids: the common
// case, and canonical.Append's interface argument costs an allocation per
// field), through canonical.Append otherwise. FuzzSeal holds the two to
// ComputeHash.
func appendStr(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return canonical.Append(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}
