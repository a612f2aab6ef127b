package runtime_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
)

// providerStub is a real HTTP server speaking one provider's wire format. It
// records every request body, and answers 429 to the first failFirst calls.
type providerStub struct {
	mu        sync.Mutex
	bodies    []string
	failFirst int
	answer    string
}

func (p *providerStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.bodies = append(p.bodies, string(b))
	n := len(p.bodies)
	p.mu.Unlock()
	if n <= p.failFirst {
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"rate_limit"}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/messages") {
		json.NewEncoder(w).Encode(map[string]any{
			"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
			"content":     []any{map[string]any{"type": "text", "text": p.answer}},
			"stop_reason": "end_turn", "usage": map[string]any{"input_tokens": 40, "output_tokens": 2},
		})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": p.answer}}},
		"usage":   map[string]any{"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
	})
}

// Ensure what reaches a provider is built from the LLM projection only: no
// secret value or reference, no PII from state, no governance metadata; and
// that usage reaches the trace and the budget, and a 429 is retried under
// on_error "retry".
func TestLLMRequestsCarryOnlyTheLLMProjection(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			stub := &providerStub{failFirst: 1, answer: " yes\n"}
			srv := httptest.NewServer(stub)
			defer srv.Close()
			base := srv.URL + "/v1"
			if provider == "anthropic" {
				base = srv.URL
			}
			client, err := llm.New(provider+"/test-model", &llm.Options{BaseURL: base, APIKey: "sk-test"})
			if err != nil {
				t.Fatal(err)
			}
			rt := openRuntime(t, runtime.Config{LLM: client})
			ctx := context.Background()
			ref, err := rt.PutSecret(ctx, "card", "4111111111111111-SECRET")
			if err != nil {
				t.Fatal(err)
			}
			prog := `{"name":"pii","max_tokens":1000,"steps":[
				{"id":"fetch","type":"tool","tool":"poll","args":{"status":"$email"},"output_key":"contact"},
				{"id":"ask","type":"llm","on_error":"retry","max_retries":3,"allowed_outputs":["yes","no"],"output_key":"answer",
				 "system":"You judge refunds. Customer: $customer",
				 "prompt":"Refund? card=$card contact=$contact note=$note hook=$__webhook__ policy=$__policy__"}]}`
			input := map[string]any{
				"email":    "ann.smith@example.com",
				"card":     ref,
				"customer": map[string]any{"name": "Ann", "password": "hunter2", "phone": "+1 415 555 0100"},
				"note":     "call me at +44 20 7946 0958 or ann.smith@example.com, card 4111 1111 1111 1111",
			}
			res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: input})
			if err != nil || res.Status != "success" || res.FinalOutput != "yes" {
				t.Fatalf("run: %+v %v", res, err)
			}
			stub.mu.Lock()
			bodies := append([]string(nil), stub.bodies...)
			stub.mu.Unlock()
			if len(bodies) != 2 {
				t.Fatalf("%d provider calls, want 2 (429, then success)", len(bodies))
			}
			tv, err := rt.Trace(ctx, res.TraceID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			leaks := []string{"4111111111111111", "4111 1111 1111 1111", "SECRET", "vault://secret/card", "hunter2",
				"ann.smith@example.com", "555 0100", "7946 0958", rt.Policy().Hash(), tv.Steps[0].StateHash, tv.InitialStateHash,
				"policy_hash", "state_hash", "envelope", "retries"}
			for _, body := range bodies {
				for _, leak := range leaks {
					if strings.Contains(body, leak) {
						t.Errorf("request body carries %q:\n%s", leak, body)
					}
				}
				if !strings.Contains(body, "[REDACTED") || !strings.Contains(body, "Refund?") {
					t.Errorf("request body lacks the redacted prompt:\n%s", body)
				}
			}
			t.Logf("request body: %s", bodies[1])
			ask := tv.Steps[1]
			if ask.Retries != 1 || ask.Usage.PromptTokens != 40 || ask.Usage.CompletionTokens != 2 || tv.Usage.TotalTokens != 42 {
				t.Fatalf("usage/retries not recorded: retries %d usage %+v total %+v", ask.Retries, ask.Usage, tv.Usage)
			}

			// The same usage trips a budget: max_tokens 10 stops the second
			// llm step.
			stub.failFirst = 0
			budget := `{"max_tokens":10,"steps":[{"id":"a","type":"llm","prompt":"p"},{"id":"b","type":"llm","prompt":"p"}]}`
			res, err = rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(budget)})
			if err != nil || res.Status != "budget_exceeded" || res.Error != "max_tokens=10 exceeded: 42 tokens consumed" {
				t.Fatalf("budget: %+v %v", res, err)
			}
		})
	}
}

// Ensure the refund example runs end to end with the mock provider.
func TestRefundExampleWithMock(t *testing.T) {
	client, err := llm.New("mock/map:broken=yes;default=no", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := openRuntime(t, runtime.Config{LLM: client})
	prog := readExampleFile(t, "customer_refund", "program.json")
	for input, last := range map[string]string{"my toaster arrived broken": "process_refund", "where is my parcel": "reject"} {
		res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: prog, Input: map[string]any{"user_input": input}})
		if err != nil || res.Status != "success" {
			t.Fatalf("%+v %v", res, err)
		}
		tv, _ := rt.Trace(context.Background(), res.TraceID, 0, 0)
		if got := tv.Steps[len(tv.Steps)-1].StepID; got != last {
			t.Fatalf("%q ended at %s, want %s", input, got, last)
		}
	}
}
