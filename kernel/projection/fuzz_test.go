package projection

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzProject ensures Project never panics on any JSON data or text, that the
// Trace projection is idempotent and leaves no vault reference behind, and
// that no projection modifies its input.
func FuzzProject(f *testing.F) {
	for _, s := range []string{
		`{"__retry__":1,"api_key":"k","to":"a@b.io","n":"+1 555 123 4567"}`,
		`"vault://secret/stripe-key and vault://secret/erased"`,
		`["4111 1111 1111 1111","vault://secret/","vault://secret/a.b-c_d"]`,
		`{"vault://secret/x":{"a@b.io":1,"c@d.io":2}}`,
		`plain text, not JSON: call (555) 123-4567`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			v = map[string]any{"text": string(data), string(data): []any{string(data)}}
		}
		before, _ := json.Marshal(v)
		for _, target := range []Target{LLM, Trace, Tool, 0} {
			out := Project(v, target, Options{Refs: testVault})
			checkMembers(t, v, target)
			if target == Trace && TraceUnchanged(v) && !reflect.DeepEqual(out, v) {
				t.Fatalf("TraceUnchanged(%#v), but Trace projects it to %#v", v, out)
			}
			if m, ok := v.(map[string]any); ok {
				ProjectState(m, target, Options{Refs: testVault, ToolKeys: []string{"text"}})
			}
			if target != Trace {
				continue
			}
			if again := Project(out, Trace, Options{Refs: testVault}); !reflect.DeepEqual(again, out) {
				t.Fatalf("Trace not idempotent:\n%#v\n%#v", out, again)
			}
			if s, ok := findRef(out); ok {
				t.Fatalf("Trace left a reference in %q", s)
			}
		}
		if after, _ := json.Marshal(v); string(after) != string(before) {
			t.Fatalf("input modified:\n%s\n%s", before, after)
		}
	})
}

// findRef returns a string or object name in v that still holds a reference.
func findRef(v any) (string, bool) {
	has := func(s string) bool { _, _, _, ok := nextRef(s, 0); return ok }
	switch v := v.(type) {
	case string:
		return v, has(v)
	case map[string]any:
		for k, e := range v {
			if has(k) {
				return k, true
			}
			if s, ok := findRef(e); ok {
				return s, true
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := findRef(e); ok {
				return s, true
			}
		}
	}
	return "", false
}

// checkMembers holds ProjectMember to Project on a one-member object, for
// each member of v (when v is an object) and for v under a few names.
func checkMembers(t *testing.T, v any, target Target) {
	t.Helper()
	names := []string{"x", "api_key", "__retry__", "__webhook__", "a@b.io", "vault://secret/k"}
	if m, ok := v.(map[string]any); ok {
		for k := range m {
			names = append(names, k)
		}
	}
	for _, name := range names {
		obj, _ := Project(map[string]any{name: v}, target, Options{Refs: testVault}).(map[string]any)
		want, wantOK := obj[name]
		got, gotOK := ProjectMember(name, v, target, Options{Refs: testVault})
		if gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("ProjectMember(%q, %#v, %v) = %#v, %v; Project gives %#v, %v", name, v, target, got, gotOK, want, wantOK)
		}
	}
}
