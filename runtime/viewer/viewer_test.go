package viewer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/mcpserver"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
	"github.com/nanovm/nano-vm-mcp/store"
)

func TestMain(m *testing.M) { os.Exit(runtimetest.Main(m)) }

const (
	key         = "test-key"
	parallelRun = `{"name":"fan_out","steps":[
 {"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}},
 {"id":"fan","type":"parallel","parallel_steps":[
   {"id":"refund","type":"tool","tool":"issue_refund","args":{"order_id":"$order_id","amount":"$amount"}},
   {"id":"log","type":"tool","tool":"audit_log"}],"is_terminal":true}]}`
	suspendingRun = `{"name":"waits","steps":[{"id":"poll","type":"tool","tool":"poll","output_key":"p"},{"id":"done","type":"tool","tool":"audit_log","is_terminal":true}]}`
)

// serve puts the viewer over rt behind the HTTP transport's guard with
// an API key, as the HTTP server mounts it.
func serve(t *testing.T, rt *runtime.Runtime) *httptest.Server {
	t.Helper()
	h := mcpserver.Guard(viewer.Handler(viewer.Local(rt), &viewer.Options{Logger: runtimetest.Logger()}),
		mcpserver.HTTPOptions{APIKey: key, Logger: runtimetest.Logger()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func run(t *testing.T, rt *runtime.Runtime, prog string, input map[string]any) string {
	t.Helper()
	res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(prog), Input: input})
	if err != nil {
		t.Fatal(err)
	}
	return res.TraceID
}

// get requests path with the token (when tok is set) and decodes a JSON
// answer into out (when not nil).
func get(t *testing.T, srv *httptest.Server, tok, path string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s: decode: %v", path, err)
		}
	}
	return resp
}

// Ensure the static files are served without the token and every API
// path needs it, that a wrong token, a write method and a cross-site
// fetch are refused, and that every answer carries the security headers.
func TestAuth(t *testing.T) {
	rt := runtimetest.Open(t, runtime.Config{})
	id := run(t, rt, parallelRun, map[string]any{"amount": 5, "order_id": "o1"})
	srv := serve(t, rt)
	tests := []struct {
		name, method, path, token string
		header                    map[string]string
		want                      int
	}{
		{name: "page without token", method: "GET", path: "/ui/", want: 200},
		{name: "script without token", method: "GET", path: "/ui/static/app.js", want: 200},
		{name: "bare /ui redirects", method: "GET", path: "/ui", want: 301},
		{name: "api without token", method: "GET", path: "/ui/api/traces", want: 401},
		{name: "api root without token", method: "GET", path: "/ui/api", want: 401},
		{name: "trace without token", method: "GET", path: "/ui/api/traces/" + id, want: 401},
		{name: "audit without token", method: "GET", path: "/ui/api/audit", want: 401},
		{name: "policy without token", method: "GET", path: "/ui/api/policy", want: 401},
		{name: "wrong token", method: "GET", path: "/ui/api/traces", token: "nope", want: 401},
		{name: "token", method: "GET", path: "/ui/api/traces", token: key, want: 200},
		{name: "post to the page without token", method: "POST", path: "/ui/", want: 401},
		{name: "post with token", method: "POST", path: "/ui/api/traces", token: key, want: 405},
		{name: "cross-site fetch", method: "GET", path: "/ui/api/traces", token: key, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "foreign origin", method: "GET", path: "/ui/", header: map[string]string{"Origin": "https://evil.example"}, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			c := *srv.Client()
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if resp.StatusCode == 200 || resp.StatusCode == 405 || resp.StatusCode == 403 && tt.header["Origin"] == "" {
				for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
					if got := resp.Header.Get(h); got != want {
						t.Errorf("%s %q, want %q", h, got, want)
					}
				}
				csp := resp.Header.Get("Content-Security-Policy")
				for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
					if !strings.Contains(csp, want) {
						t.Errorf("CSP %q lacks %q", csp, want)
					}
				}
				if strings.Contains(csp, "unsafe-inline") {
					t.Errorf("CSP allows inline code: %q", csp)
				}
			}
		})
	}
}

// Ensure the page holds no inline script or style (the CSP would block
// it) and no URL of another origin.
func TestPageIsSelfContained(t *testing.T) {
	srv := serve(t, runtimetest.Open(t, runtime.Config{NoBundledTools: true}))
	for _, p := range []string{"/ui/", "/ui/static/app.js", "/ui/static/style.css"} {
		resp := get(t, srv, "", p, nil)
		var b bytes.Buffer
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		r2, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b.ReadFrom(r2.Body)
		r2.Body.Close()
		body := b.String()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		for _, bad := range []string{"<script>", "style=\"", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "https://", "http://"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

// Ensure malformed ids, indexes and filters are refused with 400 naming
// the argument, and unknown ones with 404.
func TestBadArguments(t *testing.T) {
	rt := runtimetest.Open(t, runtime.Config{})
	id := run(t, rt, parallelRun, map[string]any{"amount": 5, "order_id": "o1"})
	srv := serve(t, rt)
	tests := []struct {
		name, path string
		want       int
		mention    string
	}{
		{name: "control character in id", path: "/ui/api/traces/" + url.PathEscape("a\x01b"), want: 400, mention: "trace id"},
		{name: "id over the limit", path: "/ui/api/traces/" + strings.Repeat("x", store.MaxIDBytes+1), want: 400, mention: "limit"},
		{name: "unknown id", path: "/ui/api/traces/no-such-trace", want: 404, mention: "no-such-trace"},
		{name: "unknown id's audit", path: "/ui/api/traces/no-such-trace/audit", want: 404},
		{name: "step index not a number", path: "/ui/api/traces/" + id + "/steps/abc", want: 400, mention: "step index"},
		{name: "negative step index", path: "/ui/api/traces/" + id + "/steps/-1", want: 400, mention: "step index"},
		{name: "step index past the end", path: "/ui/api/traces/" + id + "/steps/99", want: 404, mention: "no index 99"},
		{name: "offset negative", path: "/ui/api/traces/" + id + "?offset=-3", want: 400, mention: "offset"},
		{name: "limit too large", path: "/ui/api/traces/" + id + "?limit=999999", want: 400, mention: "limit"},
		{name: "unknown status", path: "/ui/api/traces?status=bogus", want: 400, mention: "status"},
		{name: "runs limit zero", path: "/ui/api/traces?limit=0", want: 400, mention: "limit"},
		{name: "forged cursor", path: "/ui/api/traces?cursor=" + url.QueryEscape("!!"), want: 400, mention: "cursor"},
		{name: "bad since", path: "/ui/api/traces?since=yesterday", want: 400, mention: "since"},
		{name: "program too long", path: "/ui/api/traces?program=" + strings.Repeat("p", store.MaxIDBytes+1), want: 400, mention: "program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e struct{ Error, Message string }
			resp := get(t, srv, key, tt.path, &e)
			if resp.StatusCode != tt.want || !strings.Contains(e.Message, tt.mention) {
				t.Fatalf("status %d %+v, want %d mentioning %q", resp.StatusCode, e, tt.want, tt.mention)
			}
		})
	}
}

type runDoc struct {
	Status     string `json:"status"`
	TotalSteps int    `json:"total_steps"`
	Steps      []struct {
		Index    int             `json:"index"`
		StepID   string          `json:"step_id"`
		Kind     string          `json:"kind"`
		Status   string          `json:"status"`
		StartMS  float64         `json:"start_ms"`
		EndMS    float64         `json:"end_ms"`
		Output   json.RawMessage `json:"output"`
		SubSteps []struct {
			StepID string  `json:"step_id"`
			EndMS  float64 `json:"end_ms"`
		} `json:"sub_steps"`
	} `json:"steps"`
}

// Ensure a run comes as compact summaries (no outputs; parallel
// sub-steps with their own times) and one step with its output, state
// hash and the envelope that commits to it.
func TestTraceAndStep(t *testing.T) {
	rt := runtimetest.Open(t, runtime.Config{})
	id := run(t, rt, parallelRun, map[string]any{"amount": 5, "order_id": "o1"})
	srv := serve(t, rt)
	var doc runDoc
	if resp := get(t, srv, key, "/ui/api/traces/"+id, &doc); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if doc.TotalSteps != 2 || len(doc.Steps) != 2 || len(doc.Steps[1].SubSteps) != 2 || doc.Steps[1].SubSteps[0].EndMS <= 0 {
		t.Fatalf("summaries: %+v", doc)
	}
	if doc.Steps[0].Output != nil {
		t.Fatalf("a summary carries the output: %s", doc.Steps[0].Output)
	}
	var page struct {
		Offset     int  `json:"offset"`
		NextOffset *int `json:"next_offset"`
		Steps      []struct {
			Index int `json:"index"`
		} `json:"steps"`
	}
	if get(t, srv, key, "/ui/api/traces/"+id+"?limit=1", &page); page.NextOffset == nil || *page.NextOffset != 1 || len(page.Steps) != 1 {
		t.Fatalf("first page: %+v", page)
	}
	page.NextOffset = nil
	if get(t, srv, key, "/ui/api/traces/"+id+"?offset=1&limit=1", &page); page.NextOffset != nil || page.Offset != 1 || page.Steps[0].Index != 1 {
		t.Fatalf("second page: %+v", page)
	}
	var step struct {
		Step struct {
			StepID    string         `json:"step_id"`
			StateHash string         `json:"state_hash"`
			Output    map[string]any `json:"output"`
		} `json:"step"`
		Envelope *store.Envelope `json:"envelope"`
	}
	get(t, srv, key, "/ui/api/traces/"+id+"/steps/1", &step)
	if step.Step.StepID != "fan" || step.Step.Output["refund"] == nil || step.Envelope == nil ||
		step.Envelope.StateHash != step.Step.StateHash || step.Envelope.StepIndex != 1 || step.Envelope.TraceID != id {
		t.Fatalf("step: %+v", step)
	}
}

// Ensure the runs list filters by status (the store), by program name
// and by creation time (here), and pages with the cursor.
func TestRunsFilters(t *testing.T) {
	rt := runtimetest.Open(t, runtime.Config{})
	a := run(t, rt, parallelRun, map[string]any{"amount": 5, "order_id": "o1"})
	b := run(t, rt, suspendingRun, nil)
	c := run(t, rt, parallelRun, map[string]any{"amount": 6, "order_id": "o2"})
	srv := serve(t, rt)
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	type list struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
		NextCursor string `json:"next_cursor"`
	}
	ids := func(path string) ([]string, string) {
		var l list
		if resp := get(t, srv, key, path, &l); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		var out []string
		for _, x := range l.Traces {
			out = append(out, x.TraceID)
		}
		return out, l.NextCursor
	}
	tests := []struct {
		name, query string
		want        []string
	}{
		{name: "all, newest first", query: "", want: []string{c, b, a}},
		{name: "status", query: "?status=suspended", want: []string{b}},
		{name: "program name, any case", query: "?program=FAN", want: []string{c, a}},
		{name: "since the future", query: "?since=" + future, want: nil},
		{name: "until the future", query: "?until=" + future + "&program=waits", want: []string{b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := ids("/ui/api/traces" + tt.query)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("paging through a filter", func(t *testing.T) {
		first, cur := ids("/ui/api/traces?program=fan&limit=1")
		second, cur2 := ids("/ui/api/traces?program=fan&limit=1&cursor=" + cur)
		if len(first) != 1 || first[0] != c || len(second) != 1 || second[0] != a {
			t.Fatalf("pages %v %v (cursor %q, then %q)", first, second, cur, cur2)
		}
	})
}

// Ensure an envelope changed in the database file is reported: the whole
// chain broken at its seq, and the run's own check too.
func TestTamperedChainReported(t *testing.T) {
	db := filepath.Join(t.TempDir(), "nano.db")
	cfg := runtime.Config{DBPath: db, VaultKey: runtimetest.VaultKey, Logger: runtimetest.Logger(), CacheDir: runtimetest.CacheDir}
	rt, err := runtime.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := run(t, rt, parallelRun, map[string]any{"amount": 5, "order_id": "o1"})
	id := run(t, rt, parallelRun, map[string]any{"amount": 6, "order_id": "o2"})
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	seq := runtimetest.TamperEnvelope(t, db, id, 1)
	rt, err = runtime.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv := serve(t, rt)
	type report struct {
		OK      bool   `json:"ok"`
		Scope   string `json:"scope"`
		Checked int    `json:"checked"`
		Broken  *struct {
			Seq     uint64 `json:"seq"`
			Problem string `json:"problem"`
		} `json:"broken"`
	}
	var whole, one, other report
	get(t, srv, key, "/ui/api/audit", &whole)
	if whole.OK || whole.Broken == nil || whole.Broken.Seq != seq || whole.Scope != "chain" {
		t.Fatalf("whole chain: %+v (tampered seq %d)", whole, seq)
	}
	get(t, srv, key, "/ui/api/traces/"+id+"/audit", &one)
	if one.OK || one.Broken == nil || one.Broken.Seq != seq {
		t.Fatalf("the run: %+v", one)
	}
	get(t, srv, key, "/ui/api/traces/"+first+"/audit", &other)
	if !other.OK || other.Checked != 2 {
		t.Fatalf("the untouched run: %+v", other)
	}
}

// Ensure Public admits the static files only, never the API.
func TestPublic(t *testing.T) {
	tests := []struct {
		method, path string
		want         bool
	}{
		{"GET", "/ui", true}, {"GET", "/ui/", true}, {"HEAD", "/ui/static/app.js", true},
		{"GET", "/ui/api", false}, {"GET", "/ui/api/", false}, {"GET", "/ui/api/traces", false},
		{"POST", "/ui/", false}, {"GET", "/mcp", false}, {"GET", "/uix", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := viewer.Public(r); got != tt.want {
			t.Errorf("Public(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}
