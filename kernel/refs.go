package kernel

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel/internal/condition"
)

// A reference is $ followed by a path: segments of letters, digits, '_' and
// '-', separated by dots, the first starting with a letter or '_' — the same
// grammar the condition language reads.

func isRefStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isRefChar(c byte) bool {
	return isRefStart(c) || (c >= '0' && c <= '9') || c == '-'
}

// scanRef reads a reference path starting just after a '$' at s[0:], and
// returns the path's length in bytes (0 if there is none).
func scanRef(s string) int {
	if s == "" || !isRefStart(s[0]) {
		return 0
	}
	i := 1
	for {
		for i < len(s) && isRefChar(s[i]) {
			i++
		}
		if i+1 < len(s) && s[i] == '.' && isRefChar(s[i+1]) {
			i++
			continue
		}
		return i
	}
}

// resolveRefs returns v with every $reference in its strings resolved: a
// string that is exactly one reference becomes the referenced value (typed);
// references inside a larger string are interpolated as text; a missing
// reference stays as written. Maps and slices are copied only when
// something in them changed, so a step without references costs nothing.
// lookup gets a reference's path as written, its segments joined by dots
// (state.lookupPath walks it without splitting it).
func resolveRefs(v any, lookup func(path string) (any, bool)) any {
	r, _ := resolve(v, lookup)
	return r
}

func resolve(v any, lookup func(path string) (any, bool)) (any, bool) {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, '$') < 0 {
			return x, false
		}
		r := resolveString(x, lookup)
		s, same := r.(string)
		return r, !same || s != x
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			r, changed := resolve(e, lookup)
			if changed && out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			if out != nil {
				out[k] = r
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			r, changed := resolve(e, lookup)
			if changed && out == nil {
				out = make([]any, len(x))
				copy(out, x)
			}
			if out != nil {
				out[i] = r
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	}
	return v, false
}

func resolveString(s string, lookup func(path string) (any, bool)) any {
	i, whole := firstRef(s)
	switch {
	case i < 0:
		return s
	case whole:
		if v, ok := lookup(s[1:]); ok {
			return v
		}
		return s
	}
	return interpolate(s, i, lookup)
}

// resolveText is textOf(resolveRefs(s, lookup)) for a string s (a
// prompt), without boxing the text on the way.
func resolveText(s string, lookup func(path string) (any, bool)) string {
	i, whole := firstRef(s)
	switch {
	case i < 0:
		return s
	case whole:
		if v, ok := lookup(s[1:]); ok {
			return textOf(v)
		}
		return s
	}
	return interpolate(s, i, lookup)
}

// firstRef returns the index of s's first '$' (-1: none) and whether s
// is that one reference and nothing else.
func firstRef(s string) (i int, whole bool) {
	i = strings.IndexByte(s, '$')
	return i, i == 0 && scanRef(s[1:]) == len(s)-1
}

// interpolate writes s with each reference in it replaced by the text of
// its value (textOf; a missing one stays as written); i is the index of
// s's first '$'. It writes into a pooled buffer, values encoded straight
// into it, and copies the text out once.
func interpolate(s string, i int, lookup func(path string) (any, bool)) string {
	bp := textBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		b = append(b, s[:i]...)
		s = s[i:]
		n := scanRef(s[1:])
		if n == 0 {
			b = append(b, '$')
			s = s[1:]
		} else {
			path := s[1 : 1+n]
			if v, ok := lookup(path); ok {
				b = appendText(b, v)
			} else {
				b = append(b, s[:1+n]...)
			}
			s = s[1+n:]
		}
		if i = strings.IndexByte(s, '$'); i < 0 {
			b = append(b, s...)
			break
		}
	}
	out := string(b)
	if cap(b) <= maxScratch {
		*bp = b[:0]
		textBufs.Put(bp)
	}
	return out
}

// appendText appends textOf(v) to b.
func appendText(b []byte, v any) []byte {
	if s, ok := v.(string); ok {
		return append(b, s...)
	}
	out, err := canonical.Append(b, v)
	if err != nil {
		// textOf gives "" for a value with no canonical form; what
		// Append wrote past len(b) is dropped with it.
		return b
	}
	return out
}

// textOf renders a value inside a larger string: strings as themselves,
// everything else as canonical JSON (so the same value always reads the
// same in a prompt).
func textOf(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	bp := textBufs.Get().(*[]byte)
	b, err := canonical.Append((*bp)[:0], v)
	var s string
	if err == nil {
		s = string(b)
	}
	if cap(b) <= maxScratch {
		*bp = b[:0]
		textBufs.Put(bp)
	}
	return s
}

// textBufs keeps textOf's encoding buffers: the text is copied out of one
// at its size.
var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// RefWarnings returns a warning for each $reference in the program whose
// head (its first segment) names nothing a run of it with this input can
// hold: no key of input, no step id, no output_key anywhere in the program
// (a parallel step's sub-steps included), and not a key the runtime writes
// (__webhook__, __webhook_source__). In a tool's args or an llm step's
// prompt or system such a reference is passed on as its literal text, and
// in a condition it reads as null, without a word; the warning says so,
// with the closest known names. Which names count is decided per run,
// because input keys are only known then. One warning per step and
// reference; the program is not changed.
func (p *Program) RefWarnings(input map[string]any) []Warning {
	if c := p.compiled; c != nil {
		// The common case, every reference naming something: the heads
		// the program itself does not define are found once, and a run
		// only checks its input holds them.
		c.openOnce.Do(func() { c.openHeads = p.openRefHeads() })
		all := true
		for _, h := range c.openHeads {
			if _, ok := input[h]; !ok {
				all = false
				break
			}
		}
		if all {
			return nil
		}
	}
	return p.refWarnings(input)
}

// openRefHeads returns the heads of the program's $references (as
// RefWarnings reads them) that no step id, output_key or runtime key
// defines: only an input key can give them a value.
func (p *Program) openRefHeads() []string {
	known := map[string]bool{}
	p.markDefined(known)
	var heads []string
	add := func(refs []string) {
		for _, ref := range refs {
			head, _, _ := strings.Cut(ref, ".")
			if !known[head] && !slices.Contains(heads, head) {
				heads = append(heads, head)
			}
		}
	}
	var visit func(steps []Step)
	visit = func(steps []Step) {
		for i := range steps {
			s := &steps[i]
			for _, a := range s.Args {
				add(refsIn(a, nil))
			}
			add(refsIn(s.Prompt, nil))
			add(refsIn(s.System, nil))
			if s.Type == StepCondition && s.Condition != "" {
				e := p.compiled.conds[s.ID]
				if e == nil {
					e, _ = condition.Parse(s.Condition)
				}
				var refs []string
				for _, v := range e.Vars() {
					refs = append(refs, strings.Join(v, "."))
				}
				add(refs)
			}
			visit(s.ParallelSteps)
		}
	}
	visit(p.Steps)
	return heads
}

// markDefined sets known[k] for every key the program or the runtime
// defines: the webhook keys, each step id and each output_key, also of
// parallel sub-steps.
func (p *Program) markDefined(known map[string]bool) {
	known[WebhookKey], known[WebhookSourceKey] = true, true
	for i := range p.Steps {
		s := &p.Steps[i]
		known[s.ID] = true
		if s.OutputKey != "" {
			known[s.OutputKey] = true
		}
		for j := range s.ParallelSteps {
			if k := s.ParallelSteps[j].OutputKey; k != "" {
				known[k] = true
			}
		}
	}
}

// refWarnings is RefWarnings worked out in full.
func (p *Program) refWarnings(input map[string]any) []Warning {
	known := make(map[string]bool, len(input)+2*len(p.Steps)+2)
	subOf := map[string]string{}
	for k := range input {
		known[k] = true
	}
	p.markDefined(known)
	for i := range p.Steps {
		s := &p.Steps[i]
		for j := range s.ParallelSteps {
			subOf[s.ParallelSteps[j].ID] = s.ID
		}
	}
	var names []string
	for k := range known {
		if !strings.HasPrefix(k, "__") {
			names = append(names, k)
		}
	}
	var out []Warning
	more := 0
	check := func(step, field string, refs []string, effect string) {
		seen := map[string]bool{}
		for _, ref := range refs {
			head, _, _ := strings.Cut(ref, ".")
			if known[head] || seen[ref] {
				continue
			}
			seen[ref] = true
			if len(out) == MaxRefWarnings {
				more++
				continue
			}
			ref = clipRef(ref)
			msg := fmt.Sprintf("%s: $%s matches no input key, step id or output_key, so %s", field, ref, effect)
			if parent, ok := subOf[head]; ok {
				msg += fmt.Sprintf("; %q is a sub-step of parallel step %q, whose output holds it: write $%s.%s", head, parent, parent, ref)
			} else if near := Closest(head, names, 3); len(near) > 0 {
				msg += "; did you mean " + dollarList(near) + "?"
			}
			out = append(out, Warning{Step: step, Msg: msg})
		}
	}
	var visit func(steps []Step, parent string)
	visit = func(steps []Step, parent string) {
		for i := range steps {
			s := &steps[i]
			label := s.ID
			if parent != "" {
				label = parent + "/" + s.ID
			}
			keys := make([]string, 0, len(s.Args))
			for k := range s.Args {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				check(label, "args."+k, refsIn(s.Args[k], nil), "it is passed to the tool as the literal text")
			}
			check(label, "prompt", refsIn(s.Prompt, nil), "the model gets the literal text")
			check(label, "system", refsIn(s.System, nil), "the model gets the literal text")
			if s.Type == StepCondition && s.Condition != "" {
				var e *condition.Expr
				if p.compiled != nil {
					e = p.compiled.conds[s.ID]
				}
				if e == nil {
					e, _ = condition.Parse(s.Condition)
				}
				var refs []string
				for _, v := range e.Vars() {
					refs = append(refs, strings.Join(v, "."))
				}
				check(label, "condition", refs, "it reads as null")
			}
			visit(s.ParallelSteps, s.ID)
		}
	}
	visit(p.Steps, "")
	if more > 0 {
		out = append(out, Warning{Msg: fmt.Sprintf("…and %d more $references that match no input key, step id or output_key", more)})
	}
	return out
}

// MaxRefWarnings bounds the warnings RefWarnings gives one by one (each
// with its suggestions); the rest are counted in one more.
const MaxRefWarnings = 20

// clipRef shortens a reference a client wrote to what a warning quotes.
func clipRef(ref string) string {
	if len(ref) <= 100 {
		return ref
	}
	n := 100
	for n > 0 && !utf8.RuneStart(ref[n]) {
		n--
	}
	return ref[:n] + "…"
}

// refsIn appends to refs the reference paths in v's strings (map values
// and list items, at any depth), as resolveRefs would look them up.
func refsIn(v any, refs []string) []string {
	switch x := v.(type) {
	case string:
		for s := x; ; {
			i := strings.IndexByte(s, '$')
			if i < 0 {
				return refs
			}
			s = s[i+1:]
			if n := scanRef(s); n > 0 {
				refs = append(refs, s[:n])
				s = s[n:]
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			refs = refsIn(x[k], refs)
		}
	case []any:
		for _, e := range x {
			refs = refsIn(e, refs)
		}
	}
	return refs
}

func dollarList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "$" + n
	}
	return strings.Join(q, ", ")
}
