package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure that each mock spec form answers as documented, with word-count
// usage and no cost.
func TestMock(t *testing.T) {
	tests := []struct {
		name    string
		model   string
		req     kernel.LLMRequest
		want    string
		wantUse kernel.Usage
	}{
		{name: "constant", model: "mock/yes", req: kernel.LLMRequest{System: "be brief", Prompt: "is it?"}, want: "yes",
			wantUse: kernel.Usage{PromptTokens: 4, CompletionTokens: 1, TotalTokens: 5}},
		{name: "const form keeps colons", model: "mock/const:a: b", req: kernel.LLMRequest{Prompt: "p"}, want: "a: b",
			wantUse: kernel.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}},
		{name: "const form may be empty", model: "mock/const:", req: kernel.LLMRequest{Prompt: "p"}, want: "",
			wantUse: kernel.Usage{PromptTokens: 1, TotalTokens: 1}},
		{name: "map: first key in spec order wins", model: "mock/map:refund=refund;question=question;default=no",
			req: kernel.LLMRequest{Prompt: "a question about a refund"}, want: "refund",
			wantUse: kernel.Usage{PromptTokens: 5, CompletionTokens: 1, TotalTokens: 6}},
		{name: "map: second key", model: "mock/map:refund=refund;question=question;default=no",
			req: kernel.LLMRequest{Prompt: "just a question"}, want: "question",
			wantUse: kernel.Usage{PromptTokens: 3, CompletionTokens: 1, TotalTokens: 4}},
		{name: "map: default", model: "mock/map:refund=refund;question=question;default=no",
			req: kernel.LLMRequest{Prompt: "hello\tthere\n"}, want: "no",
			wantUse: kernel.Usage{PromptTokens: 2, CompletionTokens: 1, TotalTokens: 3}},
		{name: "map: case-sensitive", model: "mock/map:refund=yes;default=no",
			req: kernel.LLMRequest{Prompt: "REFUND"}, want: "no",
			wantUse: kernel.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}},
		{name: "map: only the prompt is matched, not the system", model: "mock/map:refund=yes;default=no",
			req: kernel.LLMRequest{System: "refund", Prompt: "x"}, want: "no",
			wantUse: kernel.Usage{PromptTokens: 2, CompletionTokens: 1, TotalTokens: 3}},
		{name: "map: no default answers empty", model: "mock/map:k=v",
			req: kernel.LLMRequest{Prompt: "x"}, want: "",
			wantUse: kernel.Usage{PromptTokens: 1, TotalTokens: 1}},
		{name: "map: values may be multi-word", model: "mock/map:hi=hello there;default=",
			req: kernel.LLMRequest{Prompt: "hi"}, want: "hello there",
			wantUse: kernel.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}},
		{name: "cycle of one", model: "mock/cycle:only",
			req: kernel.LLMRequest{TraceID: "e", StepID: "s", Attempt: 7, Prompt: "p"}, want: "only",
			wantUse: kernel.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.model, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Complete(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tc.want || resp.Usage != tc.wantUse {
				t.Errorf("got %q %+v, want %q %+v", resp.Text, resp.Usage, tc.want, tc.wantUse)
			}
		})
	}
}

// Ensure that a malformed mock spec is rejected with the reason.
func TestMockSpecErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantMsg string
	}{
		{name: "unknown form", spec: "cylce:a,b", wantMsg: `unknown form "cylce"`},
		{name: "empty cycle", spec: "cycle:", wantMsg: "cycle item 1 is empty"},
		{name: "trailing comma", spec: "cycle:a,b,", wantMsg: "cycle item 3 is empty"},
		{name: "map entry without =", spec: "map:refund", wantMsg: `map entry 1 "refund" has no '='`},
		{name: "map empty key", spec: "map:a=b;=c", wantMsg: "map entry 2 has an empty key"},
		{name: "map repeated key", spec: "map:a=b;a=c", wantMsg: `map key "a" repeated`},
		{name: "map repeated default", spec: "map:default=a;default=b", wantMsg: `map key "default" repeated`},
		{name: "map trailing separator", spec: "map:a=b;", wantMsg: `map entry 2 "" has no '='`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("mock/"+tc.spec, nil)
			if !errors.Is(err, ErrMockSpec) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("New(mock/%s) error %v, want ErrMockSpec containing %q", tc.spec, err, tc.wantMsg)
			}
		})
	}
}

// Ensure that a cycle answer depends only on the request: repeatable, a
// retry moves one item on, and runs spread over all items.
func TestMockCycleDeterminism(t *testing.T) {
	items := []string{"yes", "no", "maybe"}
	c, err := New("mock/cycle:"+strings.Join(items, ","), nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(exec, step string, index, attempt int) string {
		resp, err := c.Complete(context.Background(), kernel.LLMRequest{TraceID: exec, StepID: step, StepIndex: index, Attempt: attempt, Prompt: "p"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Text
	}
	pos := func(s string) int {
		for i, v := range items {
			if v == s {
				return i
			}
		}
		t.Fatalf("answer %q not in the cycle", s)
		return -1
	}
	seen := map[string]int{}
	for e := range 300 {
		exec := fmt.Sprintf("exec-%d", e)
		first := ask(exec, "classify", 0, 1)
		seen[first]++
		if again := ask(exec, "classify", 0, 1); again != first {
			t.Fatalf("%s: same call answered %q then %q", exec, first, again)
		}
		if ask(exec, "classify", 0, 0) != first {
			t.Fatalf("%s: attempt 0 is not treated as attempt 1", exec)
		}
		for attempt := 2; attempt <= 5; attempt++ {
			got := ask(exec, "classify", 0, attempt)
			if want := items[(pos(first)+attempt-1)%len(items)]; got != want {
				t.Fatalf("%s attempt %d: %q, want %q (first was %q)", exec, attempt, got, want, first)
			}
		}
	}
	for _, v := range items {
		// Uniform would be 100 each; a hash this skewed would be a bug.
		if seen[v] < 50 {
			t.Errorf("first answers %v: %q is rare", seen, v)
		}
	}
	// Field boundaries are part of the key.
	if ask("ab", "c", 0, 1) == ask("a", "bc", 0, 1) && ask("ab", "cd", 0, 1) == ask("a", "bcd", 0, 1) &&
		ask("ab", "cde", 0, 1) == ask("a", "bcde", 0, 1) {
		t.Error("shifting a byte between run and step id never changes the answer")
	}
}

// Ensure that concurrent calls to one mock client get exactly the answers
// they get alone (run under -race).
func TestMockHammer(t *testing.T) {
	c, err := New("mock/cycle:a,b,c,d,e", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := func(i int) kernel.LLMRequest {
		return kernel.LLMRequest{TraceID: fmt.Sprint("e", i%17), StepID: "s", StepIndex: i % 3, Attempt: 1 + i%4, Prompt: "p"}
	}
	const n = 2000
	want := make([]string, n)
	for i := range n {
		r, _ := c.Complete(context.Background(), req(i))
		want[i] = r.Text
	}
	got := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				r, err := c.Complete(context.Background(), req(i))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = r.Text
			}
		})
	}
	wg.Wait()
	for i := range n {
		if got[i] != want[i] {
			t.Fatalf("call %d: concurrent answer %q, alone %q", i, got[i], want[i])
		}
	}
}

// Ensure that the mock honours a ctx that is already done.
func TestMockHonoursContext(t *testing.T) {
	c, _ := New("mock/yes", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Complete(ctx, kernel.LLMRequest{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// FuzzParseMock ensures the mock spec parser never panics and that an
// accepted spec answers without error.
func FuzzParseMock(f *testing.F) {
	for _, s := range []string{"yes", "cycle:yes,no,maybe", "map:refund=refund;question=question;default=no", "const:a:b",
		"", ":", "cycle:", "map:", "map:=", "map:a=b;a=c", "x:y"} {
		f.Add(s, "a refund question")
	}
	f.Fuzz(func(t *testing.T, spec, prompt string) {
		m, err := parseMock(spec)
		if err != nil {
			if !errors.Is(err, ErrMockSpec) {
				t.Fatalf("parseMock(%q) error %v is not ErrMockSpec", spec, err)
			}
			return
		}
		resp, err := m.Complete(context.Background(), kernel.LLMRequest{TraceID: "e", StepID: spec, Attempt: 2, Prompt: prompt})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens || resp.Usage.CostUSD != 0 {
			t.Fatalf("usage %+v", resp.Usage)
		}
	})
}

// BenchmarkMock measures one mock completion per spec form: the floor the
// kernel's own benchmarks sit on.
func BenchmarkMock(b *testing.B) {
	prompt := "Classify this customer message as refund, question or other.\nMessage: my toaster arrived broken, I want my money back"
	for _, model := range []string{"mock/yes", "mock/cycle:refund,refund,refund,refund,question", "mock/map:money back=refund;question=question;default=other"} {
		b.Run(strings.SplitN(model[len("mock/"):], ":", 2)[0], func(b *testing.B) {
			c, err := New(model, nil)
			if err != nil {
				b.Fatal(err)
			}
			req := kernel.LLMRequest{TraceID: "0b3e4a52-7f1c-4d2a-9a57-1c3d5e7f9b11", StepID: "classify", StepIndex: 0, Attempt: 1, Prompt: prompt}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Complete(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
