package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// testModules maps the test modules by name.
func testModules(t *testing.T) map[string]wasmtools.Module {
	t.Helper()
	mods, err := wasmtools.TestTools()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]wasmtools.Module{}
	for _, m := range mods {
		out[m.Name] = m
	}
	return out
}

// Ensure the uploads section and tool_secrets decode strictly, every bad
// entry is refused naming its field, and the hash covers both while a
// policy without them keeps the hash it had.
func TestParsePolicyUploads(t *testing.T) {
	base := `"policy_id":"p","version":"1","tool_capabilities":{"a":["nanovm:secrets"]}`
	tests := []struct {
		name    string
		extra   string
		wantErr string
	}{
		{name: "none"},
		{name: "empty uploads", extra: `"uploads":{}`},
		{name: "full", extra: `"tool_secrets":{"a":["k1","*"]},"uploads":{"default":{"capabilities":["nanovm:log"]},"tools":{"u":{"capabilities":["wasi:fs","nanovm:http","nanovm:secrets"],"mounts":[{"host_path":"/srv/u","guest_path":"/data","read_only":true}],"allowed_hosts":["*.example.com"],"secrets":["k1"],"state_keys":["order"],"replace_operator":true,"module_sha256":"` + strings.Repeat("ab", 32) + `"}}}`},
		{name: "unknown uploads field", extra: `"uploads":{"defaults":{}}`, wantErr: `unknown field "defaults"`},
		{name: "unknown entry field", extra: `"uploads":{"tools":{"u":{"capabilities":[],"mount":[]}}}`, wantErr: `unknown field "mount"`},
		{name: "unknown mount field", extra: `"uploads":{"tools":{"u":{"capabilities":["wasi:fs"],"mounts":[{"host_path":"/x","guest_path":"/d","rw":true}]}}}`, wantErr: `unknown field "rw"`},
		{name: "unknown capability", extra: `"uploads":{"tools":{"u":{"capabilities":["wasi:net"]}}}`, wantErr: `uploads.tools.u.capabilities: unknown capability "wasi:net"`},
		{name: "mounts without wasi:fs", extra: `"uploads":{"tools":{"u":{"capabilities":[],"mounts":[{"host_path":"/x","guest_path":"/d"}]}}}`, wantErr: "uploads.tools.u.mounts: need capability wasi:fs"},
		{name: "relative mount", extra: `"uploads":{"tools":{"u":{"capabilities":["wasi:fs"],"mounts":[{"host_path":"x","guest_path":"/d"}]}}}`, wantErr: "uploads.tools.u.mounts[0].host_path"},
		{name: "unclean mount", extra: `"uploads":{"tools":{"u":{"capabilities":["wasi:fs"],"mounts":[{"host_path":"/x/../y","guest_path":"/d"}]}}}`, wantErr: "must be a clean absolute path"},
		{name: "hosts without nanovm:http", extra: `"uploads":{"tools":{"u":{"capabilities":[],"allowed_hosts":["a.com"]}}}`, wantErr: "uploads.tools.u.allowed_hosts: needs capability nanovm:http"},
		{name: "bad host", extra: `"uploads":{"tools":{"u":{"capabilities":["nanovm:http"],"allowed_hosts":["a.*.com"]}}}`, wantErr: "uploads.tools.u.allowed_hosts[0]"},
		{name: "secrets without the capability", extra: `"uploads":{"tools":{"u":{"capabilities":[],"secrets":["k"]}}}`, wantErr: "uploads.tools.u.secrets: need capability nanovm:secrets"},
		{name: "bad secret id", extra: `"uploads":{"tools":{"u":{"capabilities":["nanovm:secrets"],"secrets":["a b"]}}}`, wantErr: `uploads.tools.u.secrets: "a b" is not a secret id`},
		{name: "bad pin", extra: `"uploads":{"tools":{"u":{"capabilities":[],"module_sha256":"ABC"}}}`, wantErr: "uploads.tools.u.module_sha256"},
		{name: "replace in the default", extra: `"uploads":{"default":{"capabilities":[],"replace_operator":true}}`, wantErr: "uploads.default: replace_operator and module_sha256 belong in a per-name entry"},
		{name: "tool_secrets of an unlisted tool", extra: `"tool_secrets":{"b":["k"]}`, wantErr: `tool_secrets names "b", which tool_capabilities does not allow`},
		{name: "bad tool_secrets id", extra: `"tool_secrets":{"a":["vault://secret/k"]}`, wantErr: "tool_secrets.a"},
	}
	hashes := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "{" + base
			if tt.extra != "" {
				doc += "," + tt.extra
			}
			p, err := runtime.ParsePolicy([]byte(doc + "}"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := hashes[p.Hash()]; dup {
				t.Fatalf("%s and %s hash alike", tt.name, prev)
			}
			hashes[p.Hash()] = tt.name
		})
	}
	// The hash of a policy without the new sections is what it was before
	// they existed (canonical JSON of these five fields).
	p, err := runtime.ParsePolicy([]byte("{" + base + "}"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := canonical.Hash(map[string]any{
		"policy_id": "p", "version": "1", "tool_capabilities": map[string][]string{"a": {"nanovm:secrets"}},
		"tool_state_keys": map[string][]string(nil), "default": false,
	})
	if err != nil || p.Hash() != old {
		t.Fatalf("hash %q, before the uploads section %q (%v)", p.Hash(), old, err)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], `tool "a" holds nanovm:secrets but tool_secrets grants it no secret`) {
		t.Fatalf("warnings = %v", w)
	}
}

// Ensure the policy grants by source: tool_capabilities to operator tools
// only, uploads their entry (when its pin matches) or the default, and a
// policy without an uploads section no upload.
func TestPolicyGrantBySource(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	p, err := runtime.ParsePolicy([]byte(`{"policy_id":"p","version":"1",
		"tool_capabilities":{"x":["nanovm:http","wasi:fs"]},
		"tool_secrets":{"x":["k1"]},
		"uploads":{"tools":{"x":{"capabilities":["nanovm:log"],"replace_operator":true,"module_sha256":"` + pin + `"},"y":{"capabilities":["nanovm:secrets"],"secrets":["k2"]}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := &tools.Manifest{Name: "x", Capabilities: []string{"nanovm:http", "nanovm:log"}}
	tests := []struct {
		name    string
		req     tools.GrantRequest
		want    map[string]string
		secrets []string
		replace bool
		bounded bool
		note    string
	}{
		{name: "operator", req: tools.GrantRequest{Name: "x", Source: store.SourceOperator, Manifest: m},
			want: map[string]string{"nanovm:http": "policy", "wasi:fs": "policy"}, secrets: []string{"k1"}},
		{name: "upload pinned", req: tools.GrantRequest{Name: "x", Source: store.SourceUpload, ModuleSHA256: pin, Manifest: m},
			want: map[string]string{"nanovm:log": "upload-policy"}, replace: true, bounded: true},
		{name: "upload of other code", req: tools.GrantRequest{Name: "x", Source: store.SourceUpload, ModuleSHA256: strings.Repeat("cd", 32), Manifest: m},
			want: map[string]string{"nanovm:log": "upload-default"}, bounded: true, note: "pinned to module sha256:" + pin},
		{name: "upload entry", req: tools.GrantRequest{Name: "y", Source: store.SourceUpload, Manifest: m},
			want: map[string]string{"nanovm:secrets": "upload-policy"}, secrets: []string{"k2"}, bounded: true},
		{name: "upload without entry", req: tools.GrantRequest{Name: "z", Source: store.SourceUpload, Manifest: m},
			want: map[string]string{"nanovm:log": "upload-default"}, bounded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := p.Grant(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(g.Capabilities) != fmt.Sprint(tt.want) || fmt.Sprint(g.Secrets) != fmt.Sprint(tt.secrets) || g.MayReplaceOperator != tt.replace || g.Bounded != tt.bounded || !strings.Contains(g.Note, tt.note) {
				t.Fatalf("grant = %+v", g)
			}
		})
	}
	noUploads, err := runtime.ParsePolicy([]byte(`{"policy_id":"p","version":"1","tool_capabilities":{"x":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noUploads.Grant(tools.GrantRequest{Name: "x", Source: store.SourceUpload, Manifest: m}); err == nil || !strings.Contains(err.Error(), "no uploads section") {
		t.Fatalf("upload under a policy without uploads: %v", err)
	}
	d := runtime.DefaultPolicy()
	if g, _ := d.Grant(tools.GrantRequest{Name: "x", Source: store.SourceOperator, Manifest: m}); fmt.Sprint(g.Capabilities) != "map[nanovm:http:manifest nanovm:log:manifest]" || fmt.Sprint(g.Secrets) != "[*]" {
		t.Fatalf("default policy, operator tool: %+v", g)
	}
	if g, _ := d.Grant(tools.GrantRequest{Name: "x", Source: store.SourceUpload, Manifest: m}); fmt.Sprint(g.Capabilities) != "map[nanovm:log:upload-default]" || len(g.Secrets) != 0 || !g.Bounded {
		t.Fatalf("default policy, upload: %+v", g)
	}
}

// Ensure, through the runtime and its trace, that a step resolves only the
// refs it is given and its tool is granted, that a refusal is an attempt
// in the step's log, and that the step record says who registered the tool
// and who granted what: under no policy file and under one.
func TestSecretGrantsInTrace(t *testing.T) {
	ctx := context.Background()
	policy := writePolicy(t, `policy_id: secrets-test
version: "1"
tool_capabilities:
  secret_probe: ["nanovm:secrets"]
tool_secrets:
  secret_probe: ["alpha"]
`)
	noSecrets := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(noSecrets, []byte(`{"policy_id":"none","version":"1","tool_capabilities":{"secret_probe":["nanovm:secrets"]}}`), 0o644)
	type step struct {
		args       string
		wantStatus float64
		wantLog    string
	}
	tests := []struct {
		name      string
		policy    string
		authority string
		steps     []step
	}{
		{name: "no policy file", authority: "manifest", steps: []step{
			{args: `{"ref":"$a"}`, wantStatus: 0},
			{args: `{"ref":"$b"}`, wantStatus: 0},
			{args: `{"id":"alpha"}`, wantStatus: 1, wantLog: "denied: not in this call's arguments"},
		}},
		{name: "tool_secrets", policy: policy, authority: "policy", steps: []step{
			{args: `{"ref":"$a"}`, wantStatus: 0},
			{args: `{"ref":"$b"}`, wantStatus: 1, wantLog: `denied: the policy does not grant tool "secret_probe" this secret (tool_secrets.secret_probe)`},
			{args: `{"id":"alpha"}`, wantStatus: 1, wantLog: "denied: not in this call's arguments"},
		}},
		{name: "no tool_secrets entry", policy: noSecrets, authority: "policy", steps: []step{
			{args: `{"ref":"$a"}`, wantStatus: 1, wantLog: "tool_secrets.secret_probe"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := openRuntime(t, runtime.Config{PolicyPath: tt.policy, NoBundledTools: true})
			registerTestTool(t, rt, "secret_probe")
			a, _ := rt.PutSecret(ctx, "alpha", "alpha-secret-value")
			b, _ := rt.PutSecret(ctx, "bravo", "bravo-secret-value")
			var steps []string
			for i, s := range tt.steps {
				steps = append(steps, fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"secret_probe","args":%s,"output_key":"r%d"}`, i, s.args, i))
			}
			res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(`{"steps":[` + strings.Join(steps, ",") + `]}`), Input: map[string]any{"a": a, "b": b}})
			if err != nil || res.Status != "success" {
				t.Fatalf("run: %+v %v", res, err)
			}
			tr, err := rt.Trace(ctx, res.TraceID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			all, _ := json.Marshal(tr)
			if strings.Contains(string(all), "secret-value") {
				t.Fatalf("a secret value is in the trace: %s", all)
			}
			for i, s := range tt.steps {
				rec := tr.Steps[i]
				if got := rec.Output.(map[string]any)["status"]; got != s.wantStatus {
					t.Fatalf("step %d status %v, want %v (%v)", i, got, s.wantStatus, rec.Output)
				}
				if !strings.Contains(rec.Log, s.wantLog) || (s.wantLog == "" && rec.Log != "") {
					t.Fatalf("step %d log %q, want %q", i, rec.Log, s.wantLog)
				}
				if rec.Tool == nil || rec.Tool.Source != "operator" || rec.Tool.Grants["nanovm:secrets"] != tt.authority {
					t.Fatalf("step %d provenance %+v", i, rec.Tool)
				}
			}
			// The audit chain says the same.
			envs, err := rt.Envelopes(ctx, res.TraceID)
			if err != nil || len(envs) != len(tt.steps) {
				t.Fatalf("envelopes: %d %v", len(envs), err)
			}
			for _, e := range envs {
				if want := `"tool_grants":{"nanovm:secrets":"` + tt.authority + `"},"tool_source":"operator"`; !strings.Contains(string(e.Payload), want) {
					t.Fatalf("envelope payload %s, want %s", e.Payload, want)
				}
			}
		})
	}
}

// Ensure an upload named like a tool the policy's tool_state_keys grants
// sees none of that state: state keys follow the source too.
func TestUploadSeesNoOperatorState(t *testing.T) {
	policy := writePolicy(t, `policy_id: state-upload
version: "1"
tool_capabilities:
  state_echo: ["nanovm:state"]
tool_state_keys:
  state_echo: ["order"]
uploads:
  default: {capabilities: ["nanovm:state"]}
`)
	rt := openRuntime(t, runtime.Config{PolicyPath: policy, NoBundledTools: true})
	mods := testModules(t)
	if _, err := rt.RegisterTool(context.Background(), mods["state_echo"].Manifest, mods["state_echo"].Wasm); err != nil {
		t.Fatal(err)
	}
	res, err := rt.RunProgram(context.Background(), runtime.RunRequest{
		Program: json.RawMessage(`{"steps":[{"id":"s","type":"tool","tool":"state_echo","args":{}}]}`),
		Input:   map[string]any{"order": "o-1"},
	})
	if err != nil || res.Status != "success" {
		t.Fatalf("%+v %v", res, err)
	}
	if got := fmt.Sprint(res.FinalOutput); !strings.Contains(got, "state") || strings.Contains(got, "o-1") {
		t.Fatalf("the upload saw the operator tool's state: %s", got)
	}
}

// FuzzParsePolicy ensures ParsePolicy never panics and that a policy it
// accepts hashes the same when parsed again.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`{"policy_id":"p","version":"1","tool_capabilities":{}}`,
		`{"policy_id":"p","tool_capabilities":{"a":["nanovm:secrets"]},"tool_secrets":{"a":["*"]},"uploads":{"default":{"capabilities":["nanovm:log"]},"tools":{"u":{"capabilities":["wasi:fs"],"mounts":[{"host_path":"/srv","guest_path":"/d","read_only":true}],"module_sha256":"` + strings.Repeat("0", 64) + `"}}}}`,
		`{"policy_id":"p","tool_capabilities":{},"uploads":null}`, `{"uploads":{"tools":{"":{}}}}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := runtime.ParsePolicy(data)
		if err != nil {
			return
		}
		q, err := runtime.ParsePolicy(data)
		if err != nil || q.Hash() != p.Hash() {
			t.Fatalf("second parse: %v, hash %s vs %s", err, q.Hash(), p.Hash())
		}
		for name := range p.ToolCapabilities {
			_, _ = p.Grant(tools.GrantRequest{Name: name, Source: store.SourceUpload, Manifest: &tools.Manifest{Name: name}})
		}
	})
}

// Ensure that under a policy with an uploads section a program naming an
// operator tool the policy does not list is still refused before it
// starts, while an upload runs with its grant.
func TestPolicyCheckBySource(t *testing.T) {
	ctx := context.Background()
	policy := writePolicy(t, "policy_id: check\nversion: \"1\"\ntool_capabilities:\n  validate_amount: []\nuploads: {}\n")
	rt := openRuntime(t, runtime.Config{PolicyPath: policy})
	mods := testModules(t)
	man, _ := json.Marshal(map[string]any{"name": "logger", "capabilities": []string{"nanovm:log"}})
	if _, err := rt.RegisterTool(ctx, man, mods["log_levels"].Wasm); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		steps  string
		denied []string
	}{
		{name: "unlisted bundled tool", steps: `{"id":"p","type":"tool","tool":"poll"}`, denied: []string{"poll"}},
		{name: "unknown tool", steps: `{"id":"p","type":"tool","tool":"nope"}`, denied: []string{"nope"}},
		{name: "upload", steps: `{"id":"l","type":"tool","tool":"logger"}`},
		{name: "listed", steps: `{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(`{"steps":[` + tt.steps + `]}`)})
			if tt.denied == nil {
				if err != nil || res.Status != "success" {
					t.Fatalf("%+v %v", res, err)
				}
				return
			}
			e, ok := runtime.AsError(err)
			if !ok || e.Code != runtime.CodeCapabilityDenied || fmt.Sprint(e.Details["denied_tools"]) != fmt.Sprint(tt.denied) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// Ensure the operator's registration at start-up wins over an upload of
// the same name, even one the policy allowed to replace it and even one of
// the same module bytes.
func TestStartupOperatorWins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "nano.db")
	mods := testModules(t)
	toolsDir := filepath.Join(dir, "tools")
	os.MkdirAll(filepath.Join(toolsDir, "scratch"), 0o755)
	os.WriteFile(filepath.Join(toolsDir, "scratch", "manifest.json"), []byte(`{"name":"scratch","capabilities":["nanovm:log"],"description":"operator"}`), 0o644)
	os.WriteFile(filepath.Join(toolsDir, "scratch", "scratch.wasm"), mods["log_levels"].Wasm, 0o644)
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte("policy_id: wins\nversion: \"1\"\ntool_capabilities:\n  scratch: [\"nanovm:log\"]\nuploads:\n  tools:\n    scratch: {capabilities: [\"nanovm:log\"], replace_operator: true}\n"), 0o644)
	cfg := runtime.Config{DBPath: db, ToolsDir: toolsDir, PolicyPath: policy, NoBundledTools: true}
	source := func(t *testing.T, rt *runtime.Runtime) (store.ToolSource, string) {
		t.Helper()
		rec, err := rt.Tool(ctx, "scratch")
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Description string }
		json.Unmarshal(rec.Manifest, &m)
		return rec.Source, m.Description
	}
	t.Run("upload replaces it while running", func(t *testing.T) {
		rt := openRuntime(t, cfg)
		if src, _ := source(t, rt); src != store.SourceOperator {
			t.Fatalf("at start: %s", src)
		}
		// Same module bytes, the uploader's manifest.
		if _, err := rt.RegisterTool(ctx, []byte(`{"name":"scratch","capabilities":["nanovm:log"],"description":"upload"}`), mods["log_levels"].Wasm); err != nil {
			t.Fatal(err)
		}
		if src, desc := source(t, rt); src != store.SourceUpload || desc != "upload" {
			t.Fatalf("after the upload: %s %q", src, desc)
		}
	})
	t.Run("the next start restores the operator's", func(t *testing.T) {
		rt := openRuntime(t, cfg)
		if src, desc := source(t, rt); src != store.SourceOperator || desc != "operator" {
			t.Fatalf("after restart: %s %q", src, desc)
		}
	})
}

// writePolicy writes the policy file text into a new temporary folder and
// returns its path.
func writePolicy(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
