package tools

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Ensure gate A refuses a module whose imports exceed its grant, naming
// every offending import.
func TestGateA(t *testing.T) {
	mods := modules(t)
	tests := []struct {
		name   string
		module string
		caps   []string
		want   string
	}{
		{name: "ungranted host function", module: "forbidden_http", want: `register tool "forbidden_http": import nanovm.http_request needs capability nanovm:http, not granted`},
		{name: "unknown module", module: "unknown_import", want: `register tool "unknown_import": import env.system is not offered by any capability`},
		{name: "filesystem without wasi:fs", module: "fs_escape", caps: []string{}, want: "import wasi_snapshot_preview1.path_open needs capability wasi:fs, not granted"},
		{name: "secrets without grant", module: "secret_echo", caps: []string{"nanovm:log"}, want: "import nanovm.secret_get needs capability nanovm:secrets, not granted"},
		{name: "state without grant", module: "state_echo", caps: []string{}, want: "import nanovm.state_get needs capability nanovm:state, not granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t)
			m, err := ParseManifest(mods[tt.module].Manifest)
			if err != nil {
				t.Fatal(err)
			}
			if tt.caps != nil {
				m.Capabilities = tt.caps
			}
			_, err = r.Register(context.Background(), m, mods[tt.module].Wasm)
			if !errors.Is(err, ErrImportNotGranted) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if _, err := r.Get(context.Background(), tt.module); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused module was stored: %v", err)
			}
		})
	}
}

// Ensure gate B on its own refuses an ungranted import: the module is
// forced past gate A, and instantiation cannot link the import.
func TestGateB(t *testing.T) {
	h := newHost(t, HostOptions{})
	ctx := context.Background()
	for _, name := range []string{"forbidden_http", "unknown_import", "secret_echo", "state_echo"} {
		t.Run(name, func(t *testing.T) {
			m, cm := compiled(t, h, name, nil)
			// Skip gate A on purpose: prepare with no capabilities at all.
			tool := prepared(t, h, m, cm, nil)
			_, err := tool.Call(ctx, CallRequest{Args: map[string]any{"ref": "vault://secret/x"}})
			if !errors.Is(err, ErrImportNotGranted) || !strings.Contains(err.Error(), "instantiate") {
				t.Fatalf("err = %v, want instantiation to refuse the import", err)
			}
		})
	}
}

// Ensure the host functions check the capability at call time too, even
// when linked: a call whose state lacks the capability is denied.
func TestHostFunctionRuntimeCheck(t *testing.T) {
	h := newHost(t, HostOptions{Secrets: secretMap{"vault://secret/k": "v"}})
	st := &callState{tool: &Tool{caps: newCapSet(nil)}}
	ctx := context.WithValue(context.Background(), callKey{}, st)
	if got := h.secretGet(ctx, nil, 0, 0, 0, 0, 0); got != statusDenied {
		t.Fatalf("secret_get without capability = %d, want denied", got)
	}
	if got := h.httpRequest(ctx, nil, 0, 0, 0, 0, 0); got != statusDenied {
		t.Fatalf("http_request without capability = %d, want denied", got)
	}
	if got := h.stateGet(ctx, nil, 0, 0, 0); got != statusDenied {
		t.Fatalf("state_get without capability = %d, want denied", got)
	}
	if got := h.secretGet(context.Background(), nil, 0, 0, 0, 0, 0); got != statusDenied {
		t.Fatalf("secret_get outside a call = %d, want denied", got)
	}
}

// Ensure gate C (Grants) narrows the effective set, and a refusal stops
// registration.
func TestGateC(t *testing.T) {
	mods := modules(t)
	m, err := ParseManifest(mods["secret_echo"].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	narrow := grantFunc(func(tool string, req []string) ([]string, error) { return []string{"nanovm:log", "nanovm:http"}, nil })
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: narrow})
	_, err = r.Register(context.Background(), m, mods["secret_echo"].Wasm)
	if err == nil || !strings.Contains(err.Error(), "import nanovm.secret_get needs capability nanovm:secrets, not granted") {
		t.Fatalf("err = %v", err)
	}
	deny := grantFunc(func(tool string, req []string) ([]string, error) {
		return nil, fmt.Errorf("tool %q not in policy", tool)
	})
	r = NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: deny})
	if _, err = r.Register(context.Background(), m, mods["secret_echo"].Wasm); !errors.Is(err, ErrCapabilityDenied) {
		t.Fatalf("err = %v, want ErrCapabilityDenied", err)
	}
}

type grantFunc func(string, []string) ([]string, error)

// Grant adapts f to gate C: the capabilities f returns, by the policy,
// with any secret.
func (f grantFunc) Grant(req GrantRequest) (Grant, error) {
	caps, err := f(req.Name, req.Manifest.Capabilities)
	if err != nil {
		return Grant{}, err
	}
	g := Grant{Capabilities: map[string]string{}, Secrets: []string{AnySecret}}
	for _, c := range caps {
		g.Capabilities[c] = AuthorityPolicy
	}
	return g, nil
}

type secretMap map[string]string

func (s secretMap) ResolveSecret(_ context.Context, _, ref string) (string, error) {
	v, ok := s[ref]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

// Ensure a resolved secret reaches the guest but is scrubbed back to its
// ref in both the result and the log.
func TestSecretScrubbed(t *testing.T) {
	const secret = `4242 "4242" 4242`
	h := newHost(t, HostOptions{Secrets: secretMap{"vault://secret/card": secret}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "secret_echo", nil)
	res, err := r.Call(context.Background(), "secret_echo", CallRequest{TraceID: "e1", Args: map[string]any{"ref": "vault://secret/card"}})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Output.(map[string]any)
	if out["secret"] != "vault://secret/card" || out["length"] != float64(len(secret)) {
		t.Fatalf("output = %v", out)
	}
	if strings.Contains(res.Log, "4242") || !strings.Contains(res.Log, "vault://secret/card") {
		t.Fatalf("log not scrubbed: %q", res.Log)
	}
	_, err = r.Call(context.Background(), "secret_echo", CallRequest{Args: map[string]any{"ref": "vault://secret/none"}})
	if err == nil || !strings.Contains(err.Error(), "secret_get failed") {
		t.Fatalf("unknown secret: %v", err)
	}
}

// Ensure nanovm.http_request reaches an allowed host and is refused for
// any other, including a redirect to another host.
func TestHTTPAllowedHosts(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "other") }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, other.URL, http.StatusFound)
			return
		}
		fmt.Fprint(w, "hello "+r.URL.Path)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	r := newRegistry(t)
	register(t, r, "http_get", func(m *Manifest) { m.AllowedHosts = []string{u.Host} })
	tests := []struct {
		name    string
		url     string
		want    string
		wantErr string
	}{
		{name: "allowed", url: srv.URL + "/x", want: "hello /x"},
		{name: "other port", url: other.URL, wantErr: "http_request denied"},
		{name: "other host", url: "http://example.invalid/", wantErr: "http_request denied"},
		{name: "redirect elsewhere", url: srv.URL + "/redirect", wantErr: "http_request denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), "http_get", CallRequest{Args: map[string]any{"url": tt.url}})
			if failedWith(t, err, tt.wantErr) {
				return
			}
			out := res.Output.(map[string]any)
			if out["status"] != 200.0 || out["body"] != tt.want {
				t.Fatalf("output = %v", out)
			}
		})
	}
}

// Ensure hostAllowed matches exact hosts, ports and wildcard subdomains.
func TestHostAllowed(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		url     string
		want    bool
	}{
		{name: "bare host any port", allowed: []string{"api.example.com"}, url: "https://api.example.com:8443/", want: true},
		{name: "port must match", allowed: []string{"api.example.com:443"}, url: "https://api.example.com:8443/", want: false},
		{name: "wildcard subdomain", allowed: []string{"*.example.com"}, url: "https://a.example.com/", want: true},
		{name: "wildcard not apex", allowed: []string{"*.example.com"}, url: "https://example.com/", want: false},
		{name: "suffix trick", allowed: []string{"*.example.com"}, url: "https://evilexample.com/", want: false},
		{name: "none", allowed: nil, url: "https://example.com/", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(tt.url)
			if got := hostAllowed(tt.allowed, u); got != tt.want {
				t.Fatalf("hostAllowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// Ensure ActsOutside follows the effective grant: the network or the host's
// files make a tool act outside its sandbox; the log and the clock do not.
func TestActsOutside(t *testing.T) {
	r := newRegistry(t, "log_levels")
	register(t, r, "http_get", func(m *Manifest) { m.AllowedHosts = []string{"127.0.0.1:1"} })
	for _, tc := range []struct {
		name string
		want bool
	}{{"log_levels", false}, {"http_get", true}} {
		tool, err := r.Resolve(context.Background(), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := tool.ActsOutside(); got != tc.want {
			t.Errorf("%s (granted %v): ActsOutside = %v, want %v", tc.name, tool.Granted, got, tc.want)
		}
	}
}
