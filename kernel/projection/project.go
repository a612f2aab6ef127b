package projection

import (
	"encoding/json"
	"strings"
)

// Options carries what a projection needs beyond the data. The zero value is
// usable: no vault and, for Tool, no granted keys.
type Options struct {
	// Refs resolves vault references. Nil means no vault: every reference is
	// unknown (empty salt, not erased).
	Refs Refs
	// ToolKeys are the top-level state keys the policy grants the tool; used
	// by ProjectState for Tool only. Nil or empty grants none.
	ToolKeys []string
}

// maxDepth bounds recursion, matching encoding/json's decoder, so a map that
// contains itself cannot exhaust the stack; anything deeper projects to nil.
const maxDepth = 10000

// Project returns a deep copy of v (JSON data: nil, bool, numbers, string,
// []any, map[string]any, []string, map[string]string, json.RawMessage)
// transformed for target. Top-level rules (LLM's "__" keys) apply when v is an
// object. Values of other types are converted through encoding/json first, and
// project to nil if that fails. Project never modifies v and never panics; an
// invalid target yields nil, so a forgotten target shows nothing.
func Project(v any, target Target, opts Options) any {
	if target < LLM || target > Tool {
		return nil
	}
	p := projector{target: target, refs: opts.Refs}
	return p.value(v, 0)
}

// TraceUnchanged reports whether Project(v, Trace, opts) equals v, whatever
// opts: v is plain JSON data (nil, bool, float64, string, []any,
// map[string]any, []string, map[string]string) with no vault reference in
// any string or object name. The canonical encoding of v is then that of
// its Trace projection, and a caller that only encodes the projection can
// skip the copy. It allocates nothing; anything else (another type, a
// deeper nesting than Project follows) reports false.
func TraceUnchanged(v any) bool {
	p := projector{target: Trace}
	return p.unchanged(v, 0)
}

// hasRef reports whether s holds a vault reference.
func hasRef(s string) bool {
	_, _, _, ok := nextRef(s, 0)
	return ok
}

// ProjectMember is what the member name: v of a top-level object
// becomes: Project(map[string]any{name: v}, target, opts)[name], and
// whether that member is there (a dropped or renamed member is not),
// without building the object. Unlike Project, it returns v itself when
// the projection would change nothing in it: treat the result as
// read-only.
func ProjectMember(name string, v any, target Target, opts Options) (any, bool) {
	if target < LLM || target > Tool {
		return nil, false
	}
	p := projector{target: target, refs: opts.Refs}
	if target == LLM && strings.HasPrefix(name, "__") {
		if name == "__webhook__" {
			return Redacted, true
		}
		return nil, false
	}
	if p.str(name) != name {
		return nil, false
	}
	if target == LLM && IsSecretName(name) {
		return Redacted, true
	}
	if p.unchanged(v, 1) {
		return v, true
	}
	return p.value(v, 1), true
}

// unchanged reports whether p.value(v, depth) equals v: every string and
// name projects to itself, no name is dropped or redacted, and v is plain
// JSON data. It allocates only where a string's projection does.
func (p *projector) unchanged(v any, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch v := v.(type) {
	case nil, bool, float64:
		return true
	case string:
		return p.same(v)
	case map[string]any:
		for k, e := range v {
			if !p.sameName(k, depth) || !p.unchanged(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !p.unchanged(e, depth+1) {
				return false
			}
		}
		return true
	case []string:
		for _, e := range v {
			if !p.same(e) {
				return false
			}
		}
		return true
	case map[string]string:
		for k, e := range v {
			if !p.sameName(k, depth) || !p.same(e) {
				return false
			}
		}
		return true
	}
	return false
}

// sameName reports whether projectMap keeps the member name k of an
// object at depth, with its value projected rather than replaced.
func (p *projector) sameName(k string, depth int) bool {
	if p.target == LLM && (depth == 0 && strings.HasPrefix(k, "__") || IsSecretName(k)) {
		return false
	}
	return p.same(k)
}

// same reports whether p.str(s) == s. Trace changes exactly the strings
// that hold a vault reference (a reference becomes a public one, or the
// tombstone), so for Trace it builds nothing.
func (p *projector) same(s string) bool {
	if p.target == Trace {
		return !hasRef(s)
	}
	return p.str(s) == s
}

// ProjectState is Project on a state object. For Tool it first keeps only the
// keys in opts.ToolKeys. The result is never nil; an invalid target yields an
// empty object.
func ProjectState(state map[string]any, target Target, opts Options) map[string]any {
	if target < LLM || target > Tool {
		return map[string]any{}
	}
	if target == Tool {
		granted := make(map[string]any, len(opts.ToolKeys))
		for _, k := range opts.ToolKeys {
			if v, ok := state[k]; ok {
				granted[k] = v
			}
		}
		state = granted
	}
	p := projector{target: target, refs: opts.Refs}
	out := projectMap(&p, state, 0, p.value, any(Redacted))
	if out == nil {
		return map[string]any{}
	}
	return out
}

type projector struct {
	target Target
	refs   Refs
}

func (p *projector) value(v any, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch v := v.(type) {
	case nil, bool, float64, float32, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, json.Number:
		return v
	case string:
		return p.str(v)
	case map[string]any:
		return projectMap(p, v, depth, p.value, any(Redacted))
	case []any:
		if v == nil {
			return []any(nil)
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = p.value(e, depth+1)
		}
		return out
	case map[string]string:
		return projectMap(p, v, depth, func(s string, _ int) string { return p.str(s) }, Redacted)
	case []string:
		if v == nil {
			return []string(nil)
		}
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = p.str(e)
		}
		return out
	default:
		g, ok := toGeneric(v)
		if !ok {
			return nil
		}
		return p.value(g, depth)
	}
}

// toGeneric converts any other value (json.RawMessage, a struct) to generic
// JSON data through encoding/json, so its strings get projected too.
func toGeneric(v any) (g any, ok bool) {
	defer func() {
		if recover() != nil { // a panicking MarshalJSON must not take us down
			g, ok = nil, false
		}
	}()
	raw, isRaw := v.(json.RawMessage)
	if !isRaw {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, false
		}
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, false
	}
	return g, true
}

// projectMap copies m with its names and values projected. each projects one
// value; redacted is what a secret-looking field becomes.
func projectMap[V any](p *projector, m map[string]V, depth int, each func(V, int) V, redacted V) map[string]V {
	if m == nil {
		return nil
	}
	if depth > maxDepth {
		return nil
	}
	out := make(map[string]V, len(m))
	// origin maps a rewritten name to the original name that produced it, so
	// collisions resolve the same way whatever the iteration order.
	var origin map[string]string
	for k, v := range m {
		if p.target == LLM && depth == 0 && strings.HasPrefix(k, "__") {
			if k == "__webhook__" {
				out[k] = redacted
				delete(origin, k)
			}
			continue
		}
		var nv V
		if p.target == LLM && IsSecretName(k) {
			nv = redacted
		} else {
			nv = each(v, depth+1)
		}
		nk := p.str(k)
		if nk == k {
			out[k] = nv // an unchanged name beats any name rewritten into it
			delete(origin, k)
			continue
		}
		if _, taken := out[nk]; taken {
			if o, rewritten := origin[nk]; !rewritten || o < k {
				continue
			}
		}
		if origin == nil {
			origin = make(map[string]string)
		}
		out[nk] = nv
		origin[nk] = k
	}
	return out
}

// str projects one string (a value or an object name).
func (p *projector) str(s string) string {
	start, end, id, ok := nextRef(s, 0)
	if !ok {
		if p.target == LLM {
			return redactPII(s)
		}
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(PublicRefPrefix) + 64)
	last := 0
	for ok {
		text := s[last:start]
		if p.target == LLM {
			text = redactPII(text)
		}
		b.WriteString(text)
		b.WriteString(p.ref(s[start:end], id))
		last = end
		start, end, id, ok = nextRef(s, end)
	}
	tail := s[last:]
	if p.target == LLM {
		tail = redactPII(tail)
	}
	b.WriteString(tail)
	return b.String()
}

// ref returns what the reference text ref (with id) becomes for the target.
func (p *projector) ref(ref, id string) string {
	var salt string
	var tombstoned bool
	if p.refs != nil {
		salt, tombstoned = p.refs.Ref(id)
	}
	if p.target == Tool {
		if tombstoned {
			return Tombstone
		}
		return ref
	}
	return PublicRef(id, salt, tombstoned)
}
