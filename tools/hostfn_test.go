package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/store"
)

// memoryModule is the smallest module with an exported memory (one page):
// a real guest memory for calling host functions directly.
var memoryModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

// guest instantiates memoryModule in h and returns it with a context whose
// call state holds caps.
func guest(t *testing.T, h *Host, m Manifest, caps ...string) (api.Module, context.Context, *callState) {
	t.Helper()
	mod, err := h.rt.Instantiate(context.Background(), memoryModule)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mod.Close(context.Background()) })
	st := &callState{tool: &Tool{Manifest: m, caps: newCapSet(caps), secretGrant: []string{AnySecret}}, cancel: func() {}}
	st.stdout = capWriter{max: 1 << 20, strict: true, state: st}
	st.stderr = capWriter{max: 1 << 20, state: st}
	return mod, context.WithValue(context.Background(), callKey{}, st), st
}

// Ensure a tool granted nanovm:state reads exactly the state in its
// CallRequest, fresh or pooled, each call its own; nil reads as {}.
func TestStateGet(t *testing.T) {
	r := newRegistry(t, "state_echo", "poll")
	register(t, r, "state_echo", func(m *Manifest) { m.Name = "state_echo_pooled"; m.Isolation = IsolationPool; m.PoolSize = 1 })
	tests := []struct {
		name    string
		tool    string
		state   map[string]any
		want    any
		wantErr error
	}{
		{name: "projected keys", tool: "state_echo", state: map[string]any{"order_id": "o-1", "amount": 5.0, "nested": map[string]any{"ok": true}},
			want: map[string]any{"order_id": "o-1", "amount": 5.0, "nested": map[string]any{"ok": true}}},
		{name: "nil is empty", tool: "state_echo", want: map[string]any{}},
		{name: "pooled first", tool: "state_echo_pooled", state: map[string]any{"a": "1", "b": "2"}, want: map[string]any{"a": "1", "b": "2"}},
		{name: "pooled second sees only its own", tool: "state_echo_pooled", state: map[string]any{"c": "3"}, want: map[string]any{"c": "3"}},
		{name: "pooled nil", tool: "state_echo_pooled", want: map[string]any{}},
		{name: "unencodable", tool: "state_echo", state: map[string]any{"x": math.Inf(1)}, wantErr: ErrInvalidArgs},
		{name: "ignored without the capability", tool: "poll", state: map[string]any{"x": math.Inf(1)}, want: "PENDING"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), tt.tool, CallRequest{State: tt.state})
			if failedAs(t, err, tt.wantErr) {
				return
			}
			got := res.Output
			if m, ok := got.(map[string]any); ok {
				got = m["state"]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("output = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// Ensure nanovm.state_get refuses a call that does not hold nanovm:state
// even though the function is linked into the instance.
func TestStateGetRefusedWhenLinkedAnyway(t *testing.T) {
	h := newHost(t, HostOptions{})
	ctx := context.Background()
	m, cm := compiled(t, h, "state_echo", nil)
	tool := prepared(t, h, m, cm, []string{string(CapState)})
	// The link (gate B) keeps state_get; the call's own set loses it.
	tool.caps = newCapSet(nil)
	_, err := tool.Call(ctx, CallRequest{State: map[string]any{"secret": "x"}})
	if !errors.Is(err, ErrToolFailed) || !strings.Contains(err.Error(), "state_get denied") {
		t.Fatalf("err = %v, want the guest to see state_get denied", err)
	}
}

// Ensure state_get reports the size needed when the buffer is too small
// and writes nothing.
func TestStateGetBufferTooSmall(t *testing.T) {
	h := newHost(t, HostOptions{})
	mod, ctx, st := guest(t, h, Manifest{}, string(CapState))
	st.state = []byte(`{"k":"value"}`)
	mem := mod.Memory()
	if got := h.stateGet(ctx, mod, 64, 4, 0); got != statusTooSmall {
		t.Fatalf("status = %d, want too small", got)
	}
	if n, _ := mem.ReadUint32Le(0); n != uint32(len(st.state)) {
		t.Fatalf("out_len = %d, want %d", n, len(st.state))
	}
	if b, _ := mem.Read(64, 4); string(b) != "\x00\x00\x00\x00" {
		t.Fatalf("buffer written: %q", b)
	}
	if got := h.stateGet(ctx, mod, 64, 64, 0); got != statusOK {
		t.Fatalf("status = %d, want ok", got)
	}
	if b, _ := mem.Read(64, uint32(len(st.state))); string(b) != string(st.state) {
		t.Fatalf("buffer = %q", b)
	}
	if got := h.stateGet(ctx, mod, 64, 64, 1<<20); got != statusInvalid {
		t.Fatalf("out_len out of bounds: status = %d, want invalid", got)
	}
}

// Ensure scrubbing replaces the longest secret first, so a secret that
// contains another never leaves its remainder, and refs are not rescanned.
func TestScrubNestedSecrets(t *testing.T) {
	secrets := map[string]string{
		"4242":                      "vault://secret/short",
		"4242-4242":                 "vault://secret/mid",
		"4242-4242-4242":            "vault://secret/long",
		"4242-4242-4242-4242":       "vault://secret/card",
		"secret":                    "vault://secret/word", // occurs inside every ref
		`say "4242-4242-4242-4242"`: "vault://secret/quoted",
	}
	tests := []struct {
		name, in, want string
	}{
		{name: "longest whole", in: "card 4242-4242-4242-4242 end", want: "card vault://secret/card end"},
		{name: "each alone", in: "4242 | 4242-4242 | 4242-4242-4242", want: "vault://secret/short | vault://secret/mid | vault://secret/long"},
		{name: "ref not rescanned", in: "a secret", want: "a vault://secret/word"},
		{name: "escaped form", in: `{"v":"say \"4242-4242-4242-4242\""}`, want: `{"v":"vault://secret/quoted"}`},
		{name: "nothing to scrub", in: "clean", want: "clean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Map order is random: repeat so a wrong order cannot pass by luck.
			for range 50 {
				st := &callState{secrets: map[string]string{}}
				for v, r := range secrets {
					st.secrets[v] = r
				}
				if got := string(st.scrub([]byte(tt.in))); got != tt.want {
					t.Fatalf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
				}
			}
		})
	}
}

// Ensure nanovm.log lines reach the call's Log with their level names, an
// unknown level logs as info, a message out of bounds is dropped, and the
// log is cut at stderr_bytes.
func TestHostLog(t *testing.T) {
	r := newRegistry(t, "log_levels")
	register(t, r, "log_levels", func(m *Manifest) { m.Name = "log_levels_capped"; m.Limits.StderrBytes = 20 })
	const full = "debug: zero\ninfo: one\nwarn: two\nerror: three\ninfo: nine\n"
	tests := []struct {
		name, tool, want string
	}{
		{name: "levels", tool: "log_levels", want: full},
		{name: "capped", tool: "log_levels_capped", want: full[:20] + "\n[log truncated]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), tt.tool, CallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Log != tt.want || res.Output != nil {
				t.Fatalf("log = %q, output = %v\nwant log %q", res.Log, res.Output, tt.want)
			}
		})
	}
	// Called directly without the capability, log writes nothing.
	h := newHost(t, HostOptions{})
	mod, ctx, st := guest(t, h, Manifest{})
	mod.Memory().Write(0, []byte("hidden"))
	h.hostLog(ctx, mod, []uint64{1, 0, 6})
	if got := st.stderr.bytes(); len(got) != 0 {
		t.Fatalf("log without capability wrote %q", got)
	}
}

// Ensure a response larger than the guest's buffer returns "too small"
// with the size needed, writes nothing, and is not requested twice.
func TestHTTPBufferTooSmall(t *testing.T) {
	var hits atomic.Int32
	body := strings.Repeat("x", 10000) // http_get's buffer is 8 KiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	// Through a real guest: the tool sees the status and reports it.
	r := newRegistry(t)
	register(t, r, "http_get", func(m *Manifest) { m.AllowedHosts = []string{u.Host} })
	_, err := r.Call(context.Background(), "http_get", CallRequest{Args: map[string]any{"url": srv.URL}})
	if !errors.Is(err, ErrToolFailed) || !strings.Contains(err.Error(), "http_request: response too large") {
		t.Fatalf("err = %v", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("server hit %d times, want 1", n)
	}

	// Directly: out_len holds the exact size the response needs.
	h := newHost(t, HostOptions{})
	mod, ctx, _ := guest(t, h, Manifest{AllowedHosts: []string{u.Host}}, string(CapHTTP))
	req := []byte(`{"method":"GET","url":"` + srv.URL + `"}`)
	mem := mod.Memory()
	mem.Write(16, req)
	if got := h.httpRequest(ctx, mod, 16, uint32(len(req)), 1024, 100, 0); got != statusTooSmall {
		t.Fatalf("status = %d, want too small", got)
	}
	need, _ := mem.ReadUint32Le(0)
	if b, _ := mem.Read(1024, 100); strings.Trim(string(b), "\x00") != "" {
		t.Fatalf("buffer written: %q", b)
	}
	if got := h.httpRequest(ctx, mod, 16, uint32(len(req)), 1024, need, 0); got != statusOK {
		t.Fatalf("status with the size asked for = %d, want ok", got)
	}
	out, _ := mem.Read(1024, need)
	var resp httpResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.Status != 200 || resp.Body != body {
		t.Fatalf("response = %.80q, %v", out, err)
	}
}

// tombstoneResolver answers like the vault: a known value, a tombstoned
// secret, or not found.
type tombstoneResolver struct{}

func (tombstoneResolver) ResolveSecret(_ context.Context, _, ref string) (string, error) {
	switch ref {
	case "vault://secret/live":
		return "s3cr3t", nil
	case "vault://secret/erased":
		return "", fmt.Errorf("resolve %s: %w", ref, store.ErrTombstoned)
	default:
		return "", fmt.Errorf("resolve %s: %w", ref, toolrecord.ErrNotFound)
	}
}

// Ensure a secret the resolver refuses (tombstoned or unknown) is a status
// code to the guest, not a crash, and the host keeps serving calls.
func TestSecretGetRefused(t *testing.T) {
	h := newHost(t, HostOptions{Secrets: tombstoneResolver{}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "secret_echo", nil)
	tests := []struct {
		name, ref string
		want      uint32
		wantErr   string
	}{
		{name: "tombstoned", ref: "vault://secret/erased", want: statusNotFound, wantErr: "secret_get failed"},
		{name: "unknown", ref: "vault://secret/nope", want: statusNotFound, wantErr: "secret_get failed"},
		{name: "not a vault ref", ref: "https://x", want: statusInvalid, wantErr: "secret_get failed"},
		{name: "live", ref: "vault://secret/live", want: statusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod, ctx, st := guest(t, h, Manifest{}, string(CapSecrets))
			st.argRefs = argRefs(map[string]any{"ref": tt.ref})
			mem := mod.Memory()
			mem.Write(16, []byte(tt.ref))
			mem.WriteUint32Le(0, 0xffff)
			if got := h.secretGet(ctx, mod, 16, uint32(len(tt.ref)), 512, 64, 0); got != tt.want {
				t.Fatalf("status = %d, want %d", got, tt.want)
			}
			if n, _ := mem.ReadUint32Le(0); tt.want != statusOK && n != 0xffff {
				t.Fatalf("out_len written on refusal: %d", n)
			}
			if tt.want != statusOK && len(st.secrets) != 0 {
				t.Fatalf("refused secret recorded: %v", st.secrets)
			}
			res, err := r.Call(context.Background(), "secret_echo", CallRequest{Args: map[string]any{"ref": tt.ref}})
			if tt.wantErr != "" {
				if !errors.Is(err, ErrToolFailed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Output.(map[string]any)["secret"] != tt.ref {
				t.Fatalf("live secret after refusals: %v %v", res.Output, err)
			}
		})
	}
}
