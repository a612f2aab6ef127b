package tools

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// testGrants is a gate C for these tests: operator tools get what their
// manifest asks with the secrets in secrets (AnySecret when absent);
// uploads get their entry in uploads, else DefaultGrant's.
type testGrants struct {
	uploads map[string]Grant
	secrets map[string][]string
}

func (g testGrants) Grant(req GrantRequest) (Grant, error) {
	if req.Source.Trusted() {
		d := DefaultGrant(req)
		if s, ok := g.secrets[req.Name]; ok {
			d.Secrets = s
		}
		return d, nil
	}
	if u, ok := g.uploads[req.Name]; ok {
		u.Bounded = true
		u.Capabilities = maps.Clone(u.Capabilities)
		return u, nil
	}
	return DefaultGrant(req), nil
}

// upload registers the named test module as a client upload, its manifest
// edited by edit.
func upload(t *testing.T, r *Registry, module string, edit func(*Manifest)) (toolrecord.Record, error) {
	t.Helper()
	mod := modules(t)[module]
	m, err := ParseManifest(mod.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&m)
	}
	return r.RegisterAs(context.Background(), toolrecord.SourceUpload, m, mod.Wasm)
}

func policyGrant(caps ...string) map[string]string {
	out := map[string]string{}
	for _, c := range caps {
		out[c] = AuthorityUploadPolicy
	}
	return out
}

// Ensure an upload's manifest may ask for less than its grant, never more:
// each field outside it (capabilities, allowed_hosts, mounts) is refused
// naming the field, and what fits is registered with its authorities.
func TestUploadAsksWithinGrant(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fsGrant := Grant{Capabilities: policyGrant("wasi:fs"), Mounts: []Mount{{HostPath: dir, GuestPath: "/data"}}}
	roGrant := Grant{Capabilities: policyGrant("wasi:fs"), Mounts: []Mount{{HostPath: dir, GuestPath: "/data", ReadOnly: true}}}
	httpGrant := Grant{Capabilities: policyGrant("nanovm:http"), AllowedHosts: []string{"*.example.com", "api.other.org:443"}}
	mount := func(host string, ro bool) func(*Manifest) {
		return func(m *Manifest) { m.Mounts = []Mount{{HostPath: host, GuestPath: "/data", ReadOnly: ro}} }
	}
	hosts := func(h ...string) func(*Manifest) { return func(m *Manifest) { m.AllowedHosts = h } }
	tests := []struct {
		name    string
		module  string
		grant   *Grant // the upload's entry; nil: the default
		edit    func(*Manifest)
		wantErr string
		want    map[string]string
	}{
		{name: "default refuses wasi:fs", module: "fs_rw", wantErr: `capabilities: "wasi:fs" is not granted to this upload (granted: wasi:stdio, nanovm:log)`},
		{name: "default refuses a mount of /", module: "fs_rw", edit: mount("/", false), wantErr: `capabilities: "wasi:fs" is not granted`},
		{name: "default refuses nanovm:http", module: "http_get", edit: hosts("example.com"), wantErr: `capabilities: "nanovm:http" is not granted`},
		{name: "default refuses nanovm:secrets", module: "secret_echo", wantErr: `capabilities: "nanovm:secrets" is not granted`},
		{name: "default grants nanovm:log", module: "log_levels", want: map[string]string{"nanovm:log": AuthorityUploadDefault}},
		{name: "entry refuses a mount of /", module: "fs_rw", grant: &fsGrant, edit: mount("/", false), wantErr: `mounts[0]: host_path "/" is not under a granted mount`},
		{name: "entry refuses a mount it does not grant", module: "fs_rw", grant: &Grant{Capabilities: policyGrant("wasi:fs")}, edit: mount(dir, false), wantErr: "mounts[0]: host_path " + fmt.Sprintf("%q", dir) + " is not granted: this upload may mount nothing"},
		{name: "entry refuses a sibling sharing the prefix", module: "fs_rw", grant: &fsGrant, edit: mount(dir+"-x", false), wantErr: "mounts[0]"},
		{name: "entry refuses dotdot", module: "fs_rw", grant: &fsGrant, edit: mount(dir+"/sub/../..", false), wantErr: "must be a clean path"},
		{name: "entry refuses writing a read-only grant", module: "fs_rw", grant: &roGrant, edit: mount(dir, false), wantErr: "is granted read-only"},
		{name: "entry allows its mount read-only", module: "fs_rw", grant: &roGrant, edit: mount(dir+"/sub", true), want: map[string]string{"wasi:fs": AuthorityUploadPolicy}},
		{name: "entry allows a mount beneath its own", module: "fs_rw", grant: &fsGrant, edit: mount(dir+"/sub", false), want: map[string]string{"wasi:fs": AuthorityUploadPolicy}},
		{name: "entry refuses another host", module: "http_get", grant: &httpGrant, edit: hosts("api.example.com", "evil.com"), wantErr: `allowed_hosts[1]: "evil.com" is not granted`},
		{name: "entry refuses the bare domain of a wildcard", module: "http_get", grant: &httpGrant, edit: hosts("example.com"), wantErr: `allowed_hosts[0]`},
		{name: "entry refuses another port", module: "http_get", grant: &httpGrant, edit: hosts("api.other.org:80"), wantErr: `allowed_hosts[0]`},
		{name: "entry allows hosts within", module: "http_get", grant: &httpGrant, edit: hosts("api.example.com", "*.cdn.example.com", "api.other.org:443"), want: map[string]string{"nanovm:http": AuthorityUploadPolicy}},
		{name: "entry refuses a capability beyond it", module: "secret_echo", grant: &httpGrant, wantErr: `capabilities: "nanovm:secrets" is not granted to this upload (granted: wasi:stdio, nanovm:http)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGrants{uploads: map[string]Grant{}}
			if tt.grant != nil {
				g.uploads[tt.module] = *tt.grant
			}
			r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: g})
			rec, err := upload(t, r, tt.module, tt.edit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrCapabilityDenied) {
					t.Fatalf("err = %v\nwant %q (ErrCapabilityDenied)", err, tt.wantErr)
				}
				if _, err := r.Get(context.Background(), tt.module); !errors.Is(err, ErrNotFound) {
					t.Fatalf("refused upload stored: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Source != toolrecord.SourceUpload || !maps.Equal(rec.Grants, tt.want) {
				t.Fatalf("record source %q grants %v, want upload %v", rec.Source, rec.Grants, tt.want)
			}
			tool, err := r.Resolve(context.Background(), tt.module)
			if err != nil || tool.Source != toolrecord.SourceUpload || !maps.Equal(tool.Authority, tt.want) {
				t.Fatalf("resolved %v: source %q authority %v", err, tool.Source, tool.Authority)
			}
		})
	}
}

// Ensure an upload can neither replace an operator or bundled tool nor
// take its name after a failed attempt, unless its grant allows it; that
// the operator's registration always wins; and that uploads may replace
// uploads.
func TestUploadCannotReplaceOperatorTool(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mods := modules(t)
	operator := func(t *testing.T, r *Registry, src toolrecord.Source) {
		t.Helper()
		m, _ := ParseManifest(mods["fs_rw"].Manifest)
		m.Name = "scratch"
		m.Mounts = []Mount{{HostPath: dir, GuestPath: "/data"}}
		if _, err := r.RegisterAs(ctx, src, m, mods["fs_rw"].Wasm); err != nil {
			t.Fatal(err)
		}
	}
	evil := func(m *Manifest) { m.Name = "scratch"; m.Mounts = []Mount{{HostPath: "/", GuestPath: "/data"}} }
	harmless := func(m *Manifest) { m.Name = "scratch" }
	for _, src := range []toolrecord.Source{toolrecord.SourceOperator, toolrecord.SourceBundled} {
		t.Run(string(src), func(t *testing.T) {
			r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
			operator(t, r, src)
			for name, edit := range map[string]func(*Manifest){"mount of /": evil, "within the default": harmless} {
				module := "fs_rw"
				if name == "within the default" {
					module = "log_levels"
				}
				_, err := upload(t, r, module, edit)
				if !errors.Is(err, ErrOperatorTool) || !errors.Is(err, ErrCapabilityDenied) || !strings.Contains(err.Error(), `"scratch" is `+SourcePhrase(src)+` tool`) {
					t.Fatalf("%s: err = %v, want ErrOperatorTool", name, err)
				}
			}
			rec, err := r.Get(ctx, "scratch")
			if err != nil || rec.Source != src {
				t.Fatalf("current scratch after refused uploads: %v %v", rec.Source, err)
			}
		})
	}
	t.Run("allowed by the grant, then the operator wins", func(t *testing.T) {
		g := testGrants{uploads: map[string]Grant{"scratch": {Capabilities: policyGrant("nanovm:log"), MayReplaceOperator: true}}}
		r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: g})
		operator(t, r, toolrecord.SourceOperator)
		if _, err := upload(t, r, "fs_rw", evil); err == nil || !strings.Contains(err.Error(), `capabilities: "wasi:fs"`) {
			t.Fatalf("replacing with more than the grant: %v", err)
		}
		rec, err := upload(t, r, "log_levels", harmless)
		if err != nil || rec.Source != toolrecord.SourceUpload {
			t.Fatalf("allowed replacement: %v %v", rec.Source, err)
		}
		tool, err := r.Resolve(ctx, "scratch")
		if err != nil || tool.Source != toolrecord.SourceUpload || len(tool.Manifest.Mounts) != 0 {
			t.Fatalf("resolved %v %v", tool, err)
		}
		operator(t, r, toolrecord.SourceOperator)
		if tool, err := r.Resolve(ctx, "scratch"); err != nil || tool.Source != toolrecord.SourceOperator {
			t.Fatalf("after the operator registers again: %v %v", tool, err)
		}
	})
	t.Run("uploads replace uploads", func(t *testing.T) {
		r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
		for i := range 2 {
			if _, err := upload(t, r, "log_levels", func(m *Manifest) { m.Version = fmt.Sprint(i) }); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("after the operator removes it", func(t *testing.T) {
		r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
		operator(t, r, toolrecord.SourceOperator)
		if err := r.Remove(ctx, "scratch"); err != nil {
			t.Fatal(err)
		}
		rec, err := upload(t, r, "log_levels", harmless)
		if err != nil || rec.Source != toolrecord.SourceUpload {
			t.Fatalf("upload of a freed name: %v %v", rec, err)
		}
	})
	// A pinned ref names one version for good: past runs and saved
	// programs run "name@sha256:<module>" as the operator registered it.
	// An upload of the same name and module (after the operator removed
	// the name) would rewrite that record, its manifest and its source.
	t.Run("an operator version stays the operator's", func(t *testing.T) {
		r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
		m, _ := ParseManifest(mods["log_levels"].Manifest)
		m.Name, m.Env = "scratch", map[string]string{"MODE": "operator"}
		opRec, err := r.Register(ctx, m, mods["log_levels"].Wasm)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(ctx, "scratch"); err != nil {
			t.Fatal(err)
		}
		_, err = upload(t, r, "log_levels", func(m *Manifest) { m.Name, m.Env = "scratch", map[string]string{"MODE": "client"} })
		if !errors.Is(err, ErrOperatorTool) || !strings.Contains(err.Error(), "scratch@sha256:"+opRec.ModuleSHA256) {
			t.Fatalf("upload over the operator's version: %v", err)
		}
		tool, err := r.Resolve(ctx, "scratch@sha256:"+opRec.ModuleSHA256)
		if err != nil || tool.Source != toolrecord.SourceOperator || tool.Manifest.Env["MODE"] != "operator" {
			t.Fatalf("pinned version after the upload: %+v %v", tool, err)
		}
	})
}

// Ensure a call's result names who registered the code and who granted
// each capability, and that a record from before sources existed reads as
// an operator tool.
func TestCallProvenance(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "poll")
	res, err := r.Call(ctx, "poll", CallRequest{})
	if err != nil || res.Source != toolrecord.SourceOperator || len(res.Grants) != 0 {
		t.Fatalf("operator call: %+v %v", res, err)
	}
	if _, err := upload(t, r, "log_levels", nil); err != nil {
		t.Fatal(err)
	}
	res, err = r.Call(ctx, "log_levels", CallRequest{})
	if err != nil || res.Source != toolrecord.SourceUpload || res.Grants["nanovm:log"] != AuthorityUploadDefault {
		t.Fatalf("upload call: %+v %v", res, err)
	}
	old := (&toolrecord.Record{}).EffectiveSource()
	if old != toolrecord.SourceOperator {
		t.Fatalf("a record without a source reads as %q", old)
	}
}

// probeSecrets is the vault of the secret tests.
var probeSecrets = secretMap{"vault://secret/alpha": "alpha-secret-value-1", "vault://secret/bravo": "bravo-secret-value-2"}

// Ensure nanovm.secret_get resolves only refs the call was given and the
// tool's grant names: a guessed id or an ungranted ref is denied, and the
// attempt is in the call's log.
func TestSecretsByNeed(t *testing.T) {
	ctx := context.Background()
	g := testGrants{secrets: map[string][]string{"secret_probe": {"alpha"}, "secret_echo": {"alpha"}}}
	r := NewRegistry(newHost(t, HostOptions{Secrets: probeSecrets}), NewMemoryStore(), RegistryOptions{Grants: g})
	register(t, r, "secret_probe", nil)
	register(t, r, "secret_echo", nil)
	tests := []struct {
		name       string
		tool       string
		args       map[string]any
		wantStatus float64
		wantLog    string
	}{
		{name: "given and granted", tool: "secret_probe", args: map[string]any{"ref": "vault://secret/alpha"}, wantStatus: 0},
		{name: "given inside a longer string", tool: "secret_probe", args: map[string]any{"ref": "vault://secret/alpha", "header": "Bearer vault://secret/alpha"}, wantStatus: 0},
		{name: "guessed from an id", tool: "secret_probe", args: map[string]any{"id": "alpha"}, wantStatus: 1,
			wantLog: `nanovm: secret_get "vault://secret/alpha" denied: not in this call's arguments`},
		{name: "given in another field, guessed here", tool: "secret_probe", args: map[string]any{"id": "bravo", "note": "vault://secret/alpha"}, wantStatus: 1,
			wantLog: `secret_get "vault://secret/bravo" denied: not in this call's arguments`},
		{name: "a resolved value smuggled into the next ref", tool: "secret_probe", args: map[string]any{"ref": "vault://secret/alpha", "smuggle": true}, wantStatus: 0,
			wantLog: `secret_get "vault://secret/vault://secret/alpha" denied: not in this call's arguments`},
		{name: "given but not granted", tool: "secret_probe", args: map[string]any{"ref": "vault://secret/bravo"}, wantStatus: 1,
			wantLog: `secret_get "vault://secret/bravo" denied: the policy does not grant tool "secret_probe" this secret (tool_secrets.secret_probe)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(ctx, tt.tool, CallRequest{Args: tt.args})
			if err != nil {
				t.Fatal(err)
			}
			out := res.Output.(map[string]any)
			if out["status"] != tt.wantStatus {
				t.Fatalf("status = %v, want %v (output %v)", out["status"], tt.wantStatus, out)
			}
			if tt.wantStatus != 0 && out["secret"] != nil {
				t.Fatalf("denied call got a secret: %v", out)
			}
			if !strings.Contains(res.Log, tt.wantLog) {
				t.Fatalf("log = %q, want %q", res.Log, tt.wantLog)
			}
			if text := fmt.Sprint(out) + res.Log; strings.Contains(text, "secret-value") {
				t.Fatalf("secret value leaked: %s", text)
			}
		})
	}
	// A call that fails still carries the attempt in its log.
	if res, err := r.Call(ctx, "secret_echo", CallRequest{Args: map[string]any{"ref": "vault://secret/bravo"}}); !errors.Is(err, ErrToolFailed) {
		t.Fatalf("err = %v", err)
	} else if !strings.Contains(res.Log, `secret_get "vault://secret/bravo" denied`) {
		t.Fatalf("attempt not in a full log: %q", res.Log)
	}
}

// Ensure a pooled instance that resolved a secret serves no other call:
// the next call runs on a fresh instance and cannot read what the first
// one held, while an instance that resolved nothing is still reused.
func TestPooledInstanceDiscardedAfterSecret(t *testing.T) {
	ctx := context.Background()
	r := NewRegistry(newHost(t, HostOptions{Secrets: probeSecrets}), NewMemoryStore(), RegistryOptions{})
	register(t, r, "secret_probe", nil) // isolation pool, pool_size 1
	first, err := r.Call(ctx, "secret_probe", CallRequest{Args: map[string]any{"ref": "vault://secret/alpha"}})
	if err != nil || first.Output.(map[string]any)["secret"] != "vault://secret/alpha" {
		t.Fatalf("first call: %v %v", first.Output, err)
	}
	for i := range 3 {
		next, err := r.Call(ctx, "secret_probe", CallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if prev := next.Output.(map[string]any)["previous"]; prev != "" {
			t.Fatalf("call %d after a secret read %q from the instance", i+2, prev)
		}
	}
	tool, err := r.Resolve(ctx, "secret_probe")
	if err != nil {
		t.Fatal(err)
	}
	tool.pool.mu.Lock()
	idle := len(tool.pool.idle)
	tool.pool.mu.Unlock()
	if idle != 1 {
		t.Fatalf("%d idle instances after calls without secrets, want 1 (reused)", idle)
	}
	if _, err := r.Call(ctx, "secret_probe", CallRequest{Args: map[string]any{"ref": "vault://secret/bravo"}}); err != nil {
		t.Fatal(err)
	}
	tool.pool.mu.Lock()
	idle = len(tool.pool.idle)
	tool.pool.mu.Unlock()
	if idle != 0 {
		t.Fatalf("%d idle instances after a call that resolved a secret, want 0", idle)
	}
}

// Ensure argRefs finds every vault ref in the arguments' strings, nested
// and embedded, and nothing else.
func TestArgRefs(t *testing.T) {
	tests := []struct {
		name string
		args map[string]any
		want []string
	}{
		{name: "none", args: map[string]any{"a": 1.0, "b": "vault://secret/"}},
		{name: "whole and embedded", args: map[string]any{"a": "vault://secret/x", "b": "Bearer vault://secret/y.z-1 and vault://secret/w!"},
			want: []string{"vault://secret/w", "vault://secret/x", "vault://secret/y.z-1"}},
		{name: "nested", args: map[string]any{"l": []any{map[string]any{"k": "vault://secret/deep"}}}, want: []string{"vault://secret/deep"}},
		{name: "keys are not searched", args: map[string]any{"vault://secret/key": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := argRefs(tt.args)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for _, w := range tt.want {
				if !got[w] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// BenchmarkSecretProbe measures what discarding a pooled instance after a
// secret costs: a warm call without a secret, a pooled call that resolves
// one (its instance is then closed), and a fresh-instance call that does.
func BenchmarkSecretProbe(b *testing.B) {
	ctx := context.Background()
	r := NewRegistry(newHost(b, HostOptions{Secrets: probeSecrets}), NewMemoryStore(), RegistryOptions{})
	register(b, r, "secret_probe", nil)
	register(b, r, "secret_probe", func(m *Manifest) { m.Name = "secret_probe_fresh"; m.Isolation = IsolationFresh; m.PoolSize = 0 })
	withRef := CallRequest{Args: map[string]any{"ref": "vault://secret/alpha"}}
	for _, bc := range []struct {
		name, tool string
		req        CallRequest
	}{
		{"pooled/no-secret", "secret_probe", CallRequest{}},
		{"pooled/secret", "secret_probe", withRef},
		{"fresh/secret", "secret_probe_fresh", withRef},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Call(ctx, bc.tool, bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
