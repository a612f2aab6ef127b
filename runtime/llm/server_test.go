package llm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// captured is one request a provider stand-in received.
type captured struct {
	Method string
	Path   string
	Header http.Header
	Body   map[string]any
}

// provider is a real HTTP server standing in for an LLM API: it records
// every request and answers each with the same status and body.
type provider struct {
	*httptest.Server
	status int
	body   []byte

	mu   sync.Mutex
	reqs []captured
}

// newProvider starts a stand-in answering status with body, closed when the
// test ends.
func newProvider(t *testing.T, status int, body []byte) *provider {
	t.Helper()
	p := &provider{status: status, body: body}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := captured{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
		if err := json.Unmarshal(raw, &c.Body); err != nil {
			http.Error(w, "request is not JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, c)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(p.status)
		w.Write(p.body)
	}))
	t.Cleanup(p.Close)
	return p
}

// only returns the single request received, failing the test otherwise.
func (p *provider) only(t *testing.T) captured {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) != 1 {
		t.Fatalf("provider got %d requests, want 1", len(p.reqs))
	}
	return p.reqs[0]
}

// completeOnce makes one completion with a client for model against p and
// returns the answer and the one request p got, which must be a POST to
// wantPath.
func completeOnce(t *testing.T, p *provider, model string, opts *Options, req kernel.LLMRequest, wantPath string) (kernel.LLMResponse, captured) {
	t.Helper()
	c, err := New(model, opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := p.only(t)
	if got.Method != http.MethodPost || got.Path != wantPath {
		t.Errorf("request %s %s, want POST %s", got.Method, got.Path, wantPath)
	}
	return resp, got
}

// checkExchange checks one exchange with a provider: the request body
// sent (compared as normalised JSON) and the answer's text and usage.
func checkExchange(t *testing.T, got captured, resp kernel.LLMResponse, wantBody, wantText string, wantUse kernel.Usage) {
	t.Helper()
	if b, want := toJSON(t, got.Body), normJSON(t, wantBody); b != want {
		t.Errorf("body\n got %s\nwant %s", b, want)
	}
	if resp.Text != wantText {
		t.Errorf("text %q, want %q", resp.Text, wantText)
	}
	if !usageEqual(resp.Usage, wantUse) {
		t.Errorf("usage %+v, want %+v", resp.Usage, wantUse)
	}
}

// fixture reads testdata/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// env returns a Getenv over a fixed map, so tests never see the machine's
// environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// toJSON re-encodes v so nested values compare as decoded JSON.
func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
