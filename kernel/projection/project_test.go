package projection

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var testVault = vault{
	"stripe-key": {salt: "s1"},
	"erased":     {tombstoned: true},
}

var (
	stripePub  = PublicRef("stripe-key", "s1", false)
	unknownPub = PublicRef("nokey", "", false)
)

// testState is a state touching every rule; a function so each test gets a
// fresh copy.
func testState() map[string]any {
	return map[string]any{
		"__envelope__": map[string]any{"hash": "abc", "seq": 7.0},
		"__retry__":    2.0,
		"__webhook__":  "https://hooks.example.com/T000/B000",
		"customer": map[string]any{
			"name":    "Ada",
			"email":   "ada@example.com",
			"phone":   "+44 20 7946 0958",
			"api_key": "sk_live_123",
			"nested": []any{
				map[string]any{"password": "hunter2", "__inner__": "kept: only top level is governance"},
				"card 4111 1111 1111 1111, not 4111 1111 1111 1112",
			},
		},
		"key_ref": "vault://secret/stripe-key",
		"note":    "use vault://secret/stripe-key then vault://secret/erased and vault://secret/nokey end",
		"erased":  "vault://secret/erased",
		"count":   3.0,
		"ok":      true,
		"nothing": nil,
		"tags":    []string{"a@b.co", "vault://secret/erased"},
		"labels":  map[string]string{"token": "abc", "owner": "ada@example.com"},
	}
}

// Ensure each target applies exactly its rules to a state touching all of
// them, nested objects and lists included.
func TestProjectState(t *testing.T) {
	customer := testState()["customer"]
	tests := []struct {
		name   string
		target Target
		opts   Options
		want   map[string]any
	}{
		{
			name: "LLM", target: LLM, opts: Options{Refs: testVault},
			want: map[string]any{
				"__webhook__": Redacted,
				"customer": map[string]any{
					"name":    "Ada",
					"email":   RedactedEmail,
					"phone":   RedactedPhone,
					"api_key": Redacted,
					"nested": []any{
						map[string]any{"password": Redacted, "__inner__": "kept: only top level is governance"},
						"card [REDACTED_CARD], not 4111 1111 1111 1112",
					},
				},
				"key_ref": stripePub,
				"note":    "use " + stripePub + " then [REDACTED_TOMBSTONE] and " + unknownPub + " end",
				"erased":  Tombstone,
				"count":   3.0,
				"ok":      true,
				"nothing": nil,
				"tags":    []string{RedactedEmail, Tombstone},
				"labels":  map[string]string{"token": Redacted, "owner": RedactedEmail},
			},
		},
		{
			name: "Trace", target: Trace, opts: Options{Refs: testVault},
			want: map[string]any{
				"__envelope__": map[string]any{"hash": "abc", "seq": 7.0},
				"__retry__":    2.0,
				"__webhook__":  "https://hooks.example.com/T000/B000",
				"customer":     customer,
				"key_ref":      stripePub,
				"note":         "use " + stripePub + " then [REDACTED_TOMBSTONE] and " + unknownPub + " end",
				"erased":       Tombstone,
				"count":        3.0,
				"ok":           true,
				"nothing":      nil,
				"tags":         []string{"a@b.co", Tombstone},
				"labels":       map[string]string{"token": "abc", "owner": "ada@example.com"},
			},
		},
		{
			name: "Trace without a vault", target: Trace,
			opts: Options{ToolKeys: []string{"ignored"}},
			want: map[string]any{
				"__envelope__": map[string]any{"hash": "abc", "seq": 7.0},
				"__retry__":    2.0,
				"__webhook__":  "https://hooks.example.com/T000/B000",
				"customer":     customer,
				"key_ref":      PublicRef("stripe-key", "", false),
				"note":         "use " + PublicRef("stripe-key", "", false) + " then " + PublicRef("erased", "", false) + " and " + unknownPub + " end",
				"erased":       PublicRef("erased", "", false),
				"count":        3.0,
				"ok":           true,
				"nothing":      nil,
				"tags":         []string{"a@b.co", PublicRef("erased", "", false)},
				"labels":       map[string]string{"token": "abc", "owner": "ada@example.com"},
			},
		},
		{
			name: "Tool with granted keys", target: Tool,
			opts: Options{Refs: testVault, ToolKeys: []string{"customer", "key_ref", "note", "erased", "tags", "missing"}},
			want: map[string]any{
				"customer": customer,
				"key_ref":  "vault://secret/stripe-key",
				"note":     "use vault://secret/stripe-key then [REDACTED_TOMBSTONE] and vault://secret/nokey end",
				"erased":   Tombstone,
				"tags":     []string{"a@b.co", Tombstone},
			},
		},
		{
			name: "Tool may be granted governance keys", target: Tool,
			opts: Options{ToolKeys: []string{"__retry__"}},
			want: map[string]any{"__retry__": 2.0},
		},
		{name: "Tool with nil keys sees nothing", target: Tool, opts: Options{Refs: testVault}, want: map[string]any{}},
		{name: "Tool with empty keys sees nothing", target: Tool, opts: Options{ToolKeys: []string{}}, want: map[string]any{}},
		{name: "invalid target sees nothing", target: Target(0), opts: Options{ToolKeys: []string{"count"}}, want: map[string]any{}},
		{name: "out of range target sees nothing", target: Target(99), want: map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := testState()
			before := snapshot(t, in)
			got := ProjectState(in, tc.target, tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ProjectState(%v):\ngot  %s\nwant %s", tc.target, snapshot(t, got), snapshot(t, tc.want))
			}
			if after := snapshot(t, in); after != before {
				t.Fatalf("input modified:\nbefore %s\nafter  %s", before, after)
			}
			// The output must share nothing with the input.
			scribble(got)
			if after := snapshot(t, in); after != before {
				t.Fatalf("output shares memory with input:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// Ensure Project handles non-object values and every accepted type, and that
// top-level rules apply only to a top-level object.
func TestProject(t *testing.T) {
	type record struct {
		Email string `json:"email"`
		Token string `json:"token"`
	}
	tests := []struct {
		name   string
		target Target
		in     any
		want   any
	}{
		{name: "nil", target: LLM, in: nil, want: nil},
		{name: "number untouched", target: LLM, in: 4111111111111111.0, want: 4111111111111111.0},
		{name: "json.Number untouched", target: LLM, in: json.Number("5551234567"), want: json.Number("5551234567")},
		{name: "int untouched", target: Trace, in: 42, want: 42},
		{name: "string", target: LLM, in: "mail ada@example.com", want: "mail [REDACTED_EMAIL]"},
		{name: "whole ref", target: Trace, in: "vault://secret/stripe-key", want: stripePub},
		{name: "ref next to text", target: Trace, in: "(vault://secret/stripe-key)", want: "(" + stripePub + ")"},
		{name: "adjacent refs", target: Trace, in: "vault://secret/stripe-key,vault://secret/erased", want: stripePub + "," + Tombstone},
		{name: "ref id takes trailing dot", target: Trace, in: "vault://secret/nokey.", want: PublicRef("nokey.", "", false)},
		{name: "empty ref id is text", target: Trace, in: "vault://secret/ and vault://secret/", want: "vault://secret/ and vault://secret/"},
		{name: "tool keeps live ref", target: Tool, in: "vault://secret/stripe-key", want: "vault://secret/stripe-key"},
		{name: "tool tombstones erased ref", target: Tool, in: "x vault://secret/erased y", want: "x [REDACTED_TOMBSTONE] y"},
		{name: "tool keeps PII", target: Tool, in: "ada@example.com", want: "ada@example.com"},
		{name: "top-level list keeps nested governance keys", target: LLM,
			in:   []any{map[string]any{"__retry__": 1.0, "secret": "x"}},
			want: []any{map[string]any{"__retry__": 1.0, "secret": Redacted}}},
		{name: "top-level object drops governance keys", target: LLM,
			in:   map[string]any{"__retry__": 1.0, "__webhook__": map[string]any{"url": "x"}, "a": 1.0},
			want: map[string]any{"__webhook__": Redacted, "a": 1.0}},
		{name: "secret name redacts any value type", target: LLM,
			in:   map[string]any{"credentials": map[string]any{"user": "u", "pass": "p"}, "pin": 1234.0},
			want: map[string]any{"credentials": Redacted, "pin": Redacted}},
		{name: "raw message", target: LLM, in: json.RawMessage(`{"token":"t","to":"a@b.io"}`),
			want: map[string]any{"token": Redacted, "to": RedactedEmail}},
		{name: "bad raw message fails closed", target: LLM, in: json.RawMessage(`{`), want: nil},
		{name: "struct", target: LLM, in: record{Email: "a@b.io", Token: "t"},
			want: map[string]any{"email": RedactedEmail, "token": Redacted}},
		{name: "unencodable value fails closed", target: Trace, in: make(chan int), want: nil},
		{name: "nil list stays nil", target: LLM, in: []any(nil), want: []any(nil)},
		{name: "nil map stays nil", target: LLM, in: map[string]any(nil), want: map[string]any(nil)},
		{name: "names are projected", target: LLM,
			in:   map[string]any{"ada@example.com": 1.0, "vault://secret/stripe-key": 2.0},
			want: map[string]any{RedactedEmail: 1.0, stripePub: 2.0}},
		{name: "invalid target", target: Target(0), in: "x", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Project(tc.in, tc.target, Options{Refs: testVault})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Project(%#v, %v) = %#v, want %#v", tc.in, tc.target, got, tc.want)
			}
		})
	}
}

// Ensure that when several names redact to the same name the winner does not
// depend on map iteration order: an unchanged name wins, else the smallest.
func TestProjectNameCollisions(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want map[string]any
	}{
		{name: "smallest original wins",
			in:   map[string]any{"c@x.io": 3.0, "a@x.io": 1.0, "b@x.io": 2.0},
			want: map[string]any{RedactedEmail: 1.0}},
		{name: "unchanged name wins",
			in:   map[string]any{"c@x.io": 3.0, RedactedEmail: 0.0, "a@x.io": 1.0},
			want: map[string]any{RedactedEmail: 0.0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 { // Go randomizes map iteration; try many orders
				if got := Project(tc.in, LLM, Options{}); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Project = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// Ensure a self-referencing value ends in nil instead of a stack overflow.
func TestProjectCycle(t *testing.T) {
	m := map[string]any{}
	m["self"] = m
	l := []any{nil}
	l[0] = l
	for _, target := range []Target{LLM, Trace, Tool} {
		if Project(m, target, Options{}) == nil || Project(l, target, Options{}) == nil {
			t.Fatalf("%v: want the outer levels kept", target)
		}
	}
}

// Ensure the LLM and Trace projections of the test state are fixed points.
func TestProjectIdempotent(t *testing.T) {
	for _, target := range []Target{LLM, Trace} {
		t.Run(target.String(), func(t *testing.T) {
			once := ProjectState(testState(), target, Options{Refs: testVault})
			twice := ProjectState(once, target, Options{Refs: testVault})
			if !reflect.DeepEqual(once, twice) {
				t.Fatalf("not idempotent:\n%s\n%s", snapshot(t, once), snapshot(t, twice))
			}
		})
	}
}

// Ensure Target names round-trip and the zero value is invalid.
func TestTarget(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{name: "LLM", target: LLM, want: "LLM"},
		{name: "Trace", target: Trace, want: "TRACE"},
		{name: "Tool", target: Tool, want: "TOOL"},
		{name: "zero", target: 0, want: "Target(0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.target.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			parsed, err := ParseTarget(strings.ToLower(tc.want))
			if tc.target == 0 {
				if err == nil {
					t.Fatalf("ParseTarget(%q) = %v, want an error", tc.want, parsed)
				}
				return
			}
			if err != nil || parsed != tc.target {
				t.Fatalf("ParseTarget(%q) = %v, %v", tc.want, parsed, err)
			}
		})
	}
}

// snapshot renders v with %#v-like fidelity for comparison; fmt sorts map keys.
func snapshot(t *testing.T, v any) string {
	t.Helper()
	return fmt.Sprintf("%#v", v)
}

// scribble overwrites every map entry and list element reachable from v.
func scribble(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			scribble(e)
			v[k] = "scribbled"
		}
		v["added"] = true
	case []any:
		for i, e := range v {
			scribble(e)
			v[i] = "scribbled"
		}
	case map[string]string:
		for k := range v {
			v[k] = "scribbled"
		}
	case []string:
		for i := range v {
			v[i] = "scribbled"
		}
	}
}

// TestTraceUnchanged checks which values TraceUnchanged passes: plain JSON
// data without a vault reference, and nothing else (FuzzProject holds the
// ones it passes to the Trace projection), allocating nothing.
func TestTraceUnchanged(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{nil, true}, {true, true}, {1.5, true}, {"plain", true},
		{map[string]any{"a": []any{"b", 2.0, map[string]any{}}}, true},
		{[]string{"a"}, true}, {map[string]string{"a": "b"}, true},
		{"see vault://secret/k", false}, {"vault://secret/", true},
		{map[string]any{"vault://secret/k": 1.0}, false},
		{[]any{map[string]any{"a": "vault://secret/k"}}, false},
		{[]string{"vault://secret/k"}, false}, {map[string]string{"a": "vault://secret/k"}, false},
		{map[string]string{"vault://secret/k": "a"}, false},
		{3, false}, {json.RawMessage(`{}`), false}, {struct{}{}, false},
	} {
		if got := TraceUnchanged(tc.v); got != tc.want {
			t.Errorf("TraceUnchanged(%#v) = %v, want %v", tc.v, got, tc.want)
		}
		if n := testing.AllocsPerRun(10, func() { TraceUnchanged(tc.v) }); n != 0 {
			t.Errorf("TraceUnchanged(%#v) allocates %v times, want none", tc.v, n)
		}
		if tc.want {
			if out := Project(tc.v, Trace, Options{Refs: testVault}); !reflect.DeepEqual(out, tc.v) {
				t.Errorf("Trace projects %#v to %#v", tc.v, out)
			}
		}
	}
}

// TestProjectMember holds ProjectMember to Project on a one-member object
// for every member of the test state (which exercises every rule) and of a
// clean one, under each target, and checks a member the projection leaves
// alone comes back as it is.
func TestProjectMember(t *testing.T) {
	// Members whose only change is one rule, deep down.
	single := map[string]any{
		"secret":    map[string]any{"tier": "gold", "deep": []any{map[string]any{"api_key": "plain"}}},
		"secretStr": map[string]string{"tier": "gold", "password": "plain"},
		"governed":  map[string]any{"x": map[string]any{"__inner__": "kept", "a": "b"}},
		"pii":       []any{"plain", "mail ada@example.com"},
		"piiName":   map[string]any{"ada@example.com": "plain"},
		"ref":       []string{"plain", "vault://secret/stripe-key"},
		"deepRef":   map[string]any{"a": []any{[]any{"vault://secret/stripe-key"}}},
		"other":     []any{int64(3)},
	}
	for _, state := range []map[string]any{testState(), cleanState(), single} {
		for _, target := range []Target{LLM, Trace, Tool} {
			for name, v := range state {
				obj, _ := Project(map[string]any{name: v}, target, Options{Refs: testVault}).(map[string]any)
				want, wantOK := obj[name]
				got, gotOK := ProjectMember(name, v, target, Options{Refs: testVault})
				if gotOK != wantOK || !reflect.DeepEqual(got, want) {
					t.Errorf("ProjectMember(%q, %v) = %#v, %v; Project gives %#v, %v", name, target, got, gotOK, want, wantOK)
				}
			}
			checkMembers(t, state, target)
		}
	}
	v := map[string]any{"customer": map[string]any{"tier": "gold"}, "tags": []any{"eu"}}
	got, ok := ProjectMember("order", v, LLM, Options{})
	if m, isMap := got.(map[string]any); !ok || !isMap || reflect.ValueOf(m).UnsafePointer() != reflect.ValueOf(v).UnsafePointer() {
		t.Errorf("ProjectMember copied a value the projection leaves alone: %#v, %v", got, ok)
	}
}
