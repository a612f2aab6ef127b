package llm

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

type mockKind int

const (
	mockConst mockKind = iota + 1
	mockCycle
	mockMap
)

// mockClient is the deterministic offline provider. Its answer is a pure
// function of the spec and the request, so it needs no lock and gives the
// same answer to the same call whatever runs beside it.
type mockClient struct {
	kind   mockKind
	values []string // const: one value; cycle: the cycle; map: the values
	keys   []string // map: the keys, in spec order
	def    string   // map: the answer when no key matches
}

// parseMock parses the part of a model string after "mock/":
//
//   - "cycle:a,b,c" answers from the cycle (see mockClient.answer);
//   - "map:k1=v1;k2=v2;default=d" answers the value of the first key, in
//     spec order, that occurs in the prompt, else d ("" when no default);
//   - "const:text" always answers text, which may contain ':';
//   - any other text without ':' (e.g. "yes") always answers itself.
//
// Whitespace is literal; items cannot contain the separators.
func parseMock(spec string) (*mockClient, error) {
	form, body, ok := strings.Cut(spec, ":")
	if !ok {
		if spec == "" {
			return nil, fmt.Errorf("parse mock spec: %w: empty", ErrMockSpec)
		}
		return &mockClient{kind: mockConst, values: []string{spec}}, nil
	}
	switch form {
	case "const":
		return &mockClient{kind: mockConst, values: []string{body}}, nil
	case "cycle":
		vals := strings.Split(body, ",")
		for i, v := range vals {
			if v == "" {
				return nil, fmt.Errorf("parse mock spec %q: %w: cycle item %d is empty", spec, ErrMockSpec, i+1)
			}
		}
		return &mockClient{kind: mockCycle, values: vals}, nil
	case "map":
		m := &mockClient{kind: mockMap}
		seen := map[string]bool{}
		for i, pair := range strings.Split(body, ";") {
			k, v, ok := strings.Cut(pair, "=")
			switch {
			case !ok:
				return nil, fmt.Errorf("parse mock spec %q: %w: map entry %d %q has no '='", spec, ErrMockSpec, i+1, pair)
			case k == "":
				return nil, fmt.Errorf("parse mock spec %q: %w: map entry %d has an empty key", spec, ErrMockSpec, i+1)
			case seen[k]:
				return nil, fmt.Errorf("parse mock spec %q: %w: map key %q repeated", spec, ErrMockSpec, k)
			}
			seen[k] = true
			if k == "default" {
				m.def = v
				continue
			}
			m.keys = append(m.keys, k)
			m.values = append(m.values, v)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("parse mock spec %q: %w: unknown form %q (want cycle:, map:, const: or a plain answer)", spec, ErrMockSpec, form)
	}
}

// Complete answers from the spec. Usage counts whitespace-separated words:
// system and prompt words as prompt tokens, answer words as completion
// tokens. Cost is always 0.
func (m *mockClient) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	if err := ctx.Err(); err != nil {
		return kernel.LLMResponse{}, fmt.Errorf("mock: %w", err)
	}
	text := m.answer(req)
	p, c := countWords(req.System)+countWords(req.Prompt), countWords(text)
	return kernel.LLMResponse{Text: text, Usage: kernel.Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}}, nil
}

// answer picks the reply. For a cycle, the starting item is chosen by a hash
// of (run, step id, step index) and each retry moves one item on, so:
// the same call always gets the same answer, whatever runs concurrently;
// a retry gets a different answer (with two or more items); different runs
// and a loop's iterations spread over the items.
func (m *mockClient) answer(req kernel.LLMRequest) string {
	switch m.kind {
	case mockCycle:
		attempt := max(req.Attempt, 1)
		i := (cycleKey(req) + uint64(attempt-1)) % uint64(len(m.values))
		return m.values[i]
	case mockMap:
		for i, k := range m.keys {
			if strings.Contains(req.Prompt, k) {
				return m.values[i]
			}
		}
		return m.def
	default:
		return m.values[0]
	}
}

// cycleKey hashes the identity of a step visit with FNV-1a (inlined so a
// call does not allocate). Strings are length-prefixed so ("ab","c") and
// ("a","bc") differ.
func cycleKey(req kernel.LLMRequest) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	num := func(v uint64) {
		for range 8 {
			h = (h ^ (v & 0xff)) * prime
			v >>= 8
		}
	}
	str := func(s string) {
		num(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
	}
	str(req.TraceID)
	str(req.StepID)
	num(uint64(req.StepIndex))
	return h
}

// countWords counts whitespace-separated words without allocating.
func countWords(s string) int {
	n, in := 0, false
	for _, r := range s {
		if unicode.IsSpace(r) {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}
