package viewer_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
)

const thinkRun = `{"name":"think","steps":[
 {"id":"ask","type":"llm","prompt":"Reply yes or no.","output_key":"d","allowed_outputs":["yes","no"]},
 {"id":"check","type":"condition","condition":"$d == \"yes\"","then":"again","otherwise":"again"},
 {"id":"again","type":"llm","prompt":"Reply yes.","output_key":"e","is_terminal":true}]}`

// FuzzAPI drives the viewer's JSON API with arbitrary paths and query
// strings over a real store: every answer is JSON, a refusal is a 4xx
// with a code and a message (bad input never makes a 500), and the
// process does not panic.
func FuzzAPI(f *testing.F) {
	// One viewer over a real runtime holding two runs serves every input: opening a runtime per input would
	// make the fuzzer measure bbolt.
	// No WebAssembly (compiling the bundled tools would take each fuzz
	// worker longer than a fuzz run): steps of a mock model and a
	// condition.
	model, err := llm.New("mock/yes", nil)
	if err != nil {
		f.Fatal(err)
	}
	rt := runtimetest.Open(f, runtime.Config{NoBundledTools: true, LLM: model, LLMModel: "mock/yes"})
	var ids []string
	for _, p := range []struct {
		prog  string
		input map[string]any
	}{{thinkRun, nil}, {thinkRun, map[string]any{"x": 1}}} {
		res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(p.prog), Input: p.input})
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, res.TraceID)
	}
	h := viewer.Handler(viewer.Local(rt), &viewer.Options{Logger: runtimetest.Logger()})
	id := ids[0]
	for _, s := range []struct{ path, query string }{
		{"traces", ""}, {"traces", "limit=1"}, {"traces", "limit=-1"}, {"traces", "limit=99999999999999999999"},
		{"traces", "status=running&program=fan&since=2020-01-01&until=2999-01-01T00:00"},
		{"traces", "cursor=AAAA&limit=200"}, {"traces", "since=%zz"}, {"traces", "program=%00"},
		{"traces/" + id, ""}, {"traces/" + id, "offset=1073741824&limit=5000"}, {"traces/" + id, "offset=9223372036854775807"},
		{"traces/" + id, "limit=0"}, {"traces/" + id + "/steps/0", ""}, {"traces/" + id + "/steps/1", ""},
		{"traces/" + id + "/steps/1073741824", ""}, {"traces/" + id + "/steps/+1", ""}, {"traces/" + id + "/steps/0x1", ""},
		{"traces/" + id + "/audit", ""}, {"traces/%00/audit", ""}, {"traces/" + ids[1], ""},
		{"audit", ""}, {"tools", ""}, {"policy", ""}, {"info", ""}, {"nope", ""}, {"traces/a/b/c", ""}, {"", ""},
	} {
		f.Add(s.path, s.query)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		u := &url.URL{Path: "/ui/api/" + path, RawQuery: query}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		code, body := w.Code, w.Body.Bytes()
		if code >= 500 {
			t.Fatalf("GET %s: %d %s", u, code, body)
		}
		if code >= 300 && code < 400 {
			return // the mux cleaning a path (e.g. "//" or "/./") redirects
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("GET %s: %d with Content-Type %q: %s", u, code, ct, body)
		}
		var e struct{ Error, Message string }
		if err := json.Unmarshal(body, &e); err != nil && code != 200 {
			t.Fatalf("GET %s: %d, not JSON: %v: %s", u, code, err, body)
		}
		if code != 200 && (e.Error == "" || e.Message == "") {
			t.Fatalf("GET %s: %d without a code and a message: %s", u, code, body)
		}
		if code == 200 && !json.Valid(body) {
			t.Fatalf("GET %s: 200 with a body that is not JSON: %s", u, body)
		}
	})
}

// Ensure a refusal quotes the value once and names the parameter, and
// what the fuzzer found answers 400 or a JSON 404: a cursor of the right
// alphabet but no listing's (it was a 500), and an unknown API path (it
// was the mux's plain-text 404).
func TestBadArgumentMessages(t *testing.T) {
	rt := runtimetest.Open(t, runtime.Config{NoBundledTools: true})
	h := viewer.Handler(viewer.Local(rt), &viewer.Options{Logger: runtimetest.Logger()})
	tests := []struct {
		path string
		code int
		msg  string
	}{
		{"/ui/api/traces?limit=abc", 400, `limit "abc": want 1 to 200`},
		{"/ui/api/traces?status=nope", 400, `status "nope": want one of`},
		{"/ui/api/traces?since=x", 400, `since "x": want an RFC 3339 time`},
		{"/ui/api/traces/t?offset=x", 400, `offset "x": want an integer from 0 to`},
		{"/ui/api/traces?cursor=AAAA", 400, "cursor: not a cursor this viewer issued"},
		{"/ui/api/nope", 404, `no API path "/ui/api/nope"`},
		{"/ui/api", 404, `no API path "/ui/api"`},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		var e struct{ Error, Message string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != tt.code || !strings.HasPrefix(e.Message, tt.msg) {
			t.Errorf("GET %s: %d %s; want %d with a message starting %q", tt.path, w.Code, w.Body.Bytes(), tt.code, tt.msg)
		}
	}
}
