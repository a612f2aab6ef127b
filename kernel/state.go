package kernel

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
)

// Reserved data keys written by Resume.
const (
	WebhookKey       = "__webhook__"
	WebhookSourceKey = "__webhook_source__"
)

// state is a run's variables: the input, each step's output under its id,
// and the data written through output_key and by resume events. A variable
// $name looks in data, then input, then step outputs (see RATIONALE.md,
// "Why does data shadow input?").
//
// The state hash is a delta chain (RATIONALE.md, "Why is the state hash a
// delta chain?"): the initial hash is SHA-256 over the canonical JSON of the
// whole state, and each later hash is SHA-256 over the canonical JSON of
// {"prev": previous hash, "set": {section: {key: value}}} for the members
// that changed. A step costs O(its own output), however large the state.
type state struct {
	input, outputs, data section
	// vars is the merged view the program sees.
	vars map[string]any
	// pending lists the members changed since the last hash.
	pending []change
	last    string
	// buf holds what is hashed, and a member's new encoding until set
	// knows it changed (the two never overlap): a value rewritten as it
	// was costs no allocation. It comes from stateBufs (bufp) and goes
	// back there when the run's loop ends (release).
	buf  []byte
	bufp *[]byte
}

// stateBufs keeps the states' scratch buffers between runs: nothing a
// state keeps points into its buffer (every kept encoding is a copy).
var stateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// release gives the scratch buffer back once the run's steps are done;
// a state used after it gets a new one as it needs it.
func (s *state) release() {
	if s.bufp == nil {
		return
	}
	if cap(s.buf) <= maxScratch {
		*s.bufp = s.buf[:0]
		stateBufs.Put(s.bufp)
	}
	s.buf, s.bufp = nil, nil
}

// section is one object of the canonical state, with each member's
// canonical encoding kept to tell a real change from a rewrite of the same
// value.
type section struct {
	name string
	m    map[string]member
}

// member is one value of a section and its canonical encoding, which is
// never changed once made (a change makes a new one).
type member struct {
	v   any
	enc []byte
}

type change struct {
	sec *section
	key string
	enc []byte // canonical value
}

// newState makes a run's state from its input; steps is the program's
// step count, a size hint for the outputs.
func newState(input map[string]any, steps int) (*state, error) {
	s := &state{
		input:   section{name: "input", m: make(map[string]member, len(input))},
		outputs: section{name: "outputs", m: make(map[string]member, steps)},
		data:    section{name: "data", m: map[string]member{}},
		vars:    make(map[string]any, len(input)+steps),
		bufp:    stateBufs.Get().(*[]byte),
	}
	s.buf = (*s.bufp)[:0]
	// The input members' encodings share one allocation: encoded one
	// after the other, copied once, then sliced (each is never changed).
	type span struct {
		k          string
		v          any
		start, end int
	}
	var small [8]span
	spans := small[:0]
	b := s.buf[:0]
	for k, v := range input {
		start := len(b)
		var err error
		if b, err = canonical.Append(b, v); err != nil {
			return nil, fmt.Errorf("input %q: %w", k, err)
		}
		spans = append(spans, span{k, v, start, len(b)})
		s.vars[k] = v
	}
	encs := bytes.Clone(b)
	if cap(b) <= maxScratch {
		s.buf = b[:0]
	}
	for _, sp := range spans {
		s.input.m[sp.k] = member{v: sp.v, enc: encs[sp.start:sp.end:sp.end]}
	}
	s.last = s.fullHash()
	return s, nil
}

// set writes a member and notes it for the next hash if its canonical
// encoding changed.
func (s *state) set(sec *section, k string, v any) error {
	b, err := canonical.Append(s.buf[:0], v)
	if cap(b) <= maxScratch {
		s.buf = b[:0]
	}
	if err != nil {
		return err
	}
	s.setEncoded(sec, k, v, b)
	return nil
}

// setEncoded is set of a value whose canonical encoding is enc, which it
// copies if it keeps it (enc may be s.buf); it returns the
// member's encoding as kept.
func (s *state) setEncoded(sec *section, k string, v any, enc []byte) []byte {
	if old, ok := sec.m[k]; ok && bytes.Equal(old.enc, enc) {
		sec.m[k] = member{v: v, enc: old.enc}
		return old.enc
	}
	return s.keep(sec, k, v, bytes.Clone(enc))
}

// keep stores a member with its encoding, which from now on is shared
// and never changed, and notes the change for the next hash.
func (s *state) keep(sec *section, k string, v any, enc []byte) []byte {
	sec.m[k] = member{v: v, enc: enc}
	for i := range s.pending {
		if s.pending[i].sec == sec && s.pending[i].key == k {
			s.pending[i].enc = enc
			return enc
		}
	}
	s.pending = append(s.pending, change{sec: sec, key: k, enc: enc})
	return enc
}

// setShared is set of a value whose kept canonical encoding is enc (a
// member's, from set): the bytes are shared, not copied.
func (s *state) setShared(sec *section, k string, v any, enc []byte) {
	if old, ok := sec.m[k]; ok && bytes.Equal(old.enc, enc) {
		sec.m[k] = member{v: v, enc: old.enc}
		return
	}
	s.keep(sec, k, v, enc)
}

// maxScratch bounds the encoding buffer a state keeps between members.
const maxScratch = 64 << 10

// setOutput records a step's output under its id.
func (s *state) setOutput(id string, v any) error {
	if err := s.set(&s.outputs, id, v); err != nil {
		return fmt.Errorf("output of step %q: %w", id, err)
	}
	if _, shadowed := s.data.m[id]; !shadowed {
		if _, shadowed := s.input.m[id]; !shadowed {
			s.vars[id] = v
		}
	}
	return nil
}

// setDataShared is setData of a value whose kept canonical encoding is
// enc (its step output's: an output_key holds the same value).
func (s *state) setDataShared(k string, v any, enc []byte) {
	s.setShared(&s.data, k, v, enc)
	s.vars[k] = v
}

// setData writes a data key (output_key or a resume key).
func (s *state) setData(k string, v any) error {
	if err := s.set(&s.data, k, v); err != nil {
		return fmt.Errorf("data %q: %w", k, err)
	}
	s.vars[k] = v
	return nil
}

// lookup resolves a variable path. A path whose head is a step id may name
// the output as "output" ($step.output.x), as the original allowed.
func (s *state) lookup(path []string) (any, bool) {
	if len(path) == 0 {
		return nil, false
	}
	v, ok := s.vars[path[0]]
	if !ok {
		return nil, false
	}
	rest := path[1:]
	if len(rest) > 0 && rest[0] == "output" {
		if _, isStep := s.outputs.m[path[0]]; isStep && s.vars[path[0]] != nil {
			if m, isMap := v.(map[string]any); !isMap || m["output"] == nil {
				rest = rest[1:]
			}
		}
	}
	for _, seg := range rest {
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// lookupPath is lookup of a path written with dots ("order.get_amount.x",
// as a $reference writes it), walked without splitting it.
func (s *state) lookupPath(path string) (any, bool) {
	head, rest, _ := strings.Cut(path, ".")
	v, ok := s.vars[head]
	if !ok {
		return nil, false
	}
	if first, after, _ := strings.Cut(rest, "."); first == "output" {
		if _, isStep := s.outputs.m[head]; isStep && v != nil {
			if m, isMap := v.(map[string]any); !isMap || m["output"] == nil {
				rest = after
			}
		}
	}
	return walkPath(v, rest)
}

// walkPath follows the dotted members of rest ("" for none) from v.
func walkPath(v any, rest string) (any, bool) {
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, ".")
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		var ok bool
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// hash returns the state hash after the changes since the last call: the
// previous hash when nothing changed, else the next link of the chain.
func (s *state) hash() string {
	if len(s.pending) == 0 {
		return s.last
	}
	if len(s.pending) > 1 {
		slices.SortFunc(s.pending, func(a, b change) int {
			if a.sec != b.sec {
				return strings.Compare(a.sec.name, b.sec.name)
			}
			return canonical.CompareKeys(a.key, b.key)
		})
	}
	b := append(s.buf[:0], `{"prev":"`...)
	b = append(b, s.last...)
	b = append(b, `","set":{`...)
	var cur *section
	for i, c := range s.pending {
		if c.sec != cur {
			if cur != nil {
				b = append(b, "},"...)
			}
			cur = c.sec
			b = canonical.AppendString(b, cur.name)
			b = append(b, ":{"...)
		} else if i > 0 {
			b = append(b, ',')
		}
		b = canonical.AppendString(b, c.key)
		b = append(b, ':')
		b = append(b, c.enc...)
	}
	b = append(b, "}}}"...)
	s.pending = s.pending[:0]
	s.last = s.sum(b)
	return s.last
}

// fullHash is SHA-256 over the canonical JSON of the whole state.
func (s *state) fullHash() string {
	b := append(s.buf[:0], '{')
	var small [16]string
	keys := small[:0]
	for i, sec := range []*section{&s.data, &s.input, &s.outputs} {
		if i > 0 {
			b = append(b, ',')
		}
		b = canonical.AppendString(b, sec.name)
		b = append(b, ":{"...)
		keys = keys[:0]
		for k := range sec.m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, canonical.CompareKeys[string])
		for j, k := range keys {
			if j > 0 {
				b = append(b, ',')
			}
			b = canonical.AppendString(b, k)
			b = append(b, ':')
			b = append(b, sec.m[k].enc...)
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return s.sum(b)
}

func (s *state) sum(b []byte) string {
	sum := sha256.Sum256(b)
	s.buf = b[:0]
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}
