package tools

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"testing"
)

// Ensure a name can move to a new version while a pinned ref keeps running
// the exact old module, and removal keeps versions for the audit trail.
func TestRegistryVersions(t *testing.T) {
	ctx := context.Background()
	mods := modules(t)
	r := newRegistry(t)
	m, err := ParseManifest(mods["reserve_funds"].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	m.Name = "pay"
	v1, err := r.Register(ctx, m, mods["reserve_funds"].Wasm)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "2.0.0"
	v2, err := r.Register(ctx, m, mods["capture_payment"].Wasm)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := r.Get(ctx, "pay"); cur.ModuleSHA256 != v2.ModuleSHA256 {
		t.Fatalf("current = %s, want v2", cur.ModuleSHA256)
	}
	tests := []struct {
		name    string
		ref     string
		wantKey string
		wantErr error
	}{
		{name: "current", ref: "pay", wantKey: "capture_id"},
		{name: "pinned old", ref: "pay@sha256:" + v1.ModuleSHA256, wantKey: "reservation_id"},
		{name: "pinned unknown", ref: "pay@sha256:" + strings.Repeat("0", 64), wantErr: ErrNotFound},
		{name: "unknown name", ref: "nope", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(ctx, tt.ref, CallRequest{})
			if failedAs(t, err, tt.wantErr) {
				return
			}
			if _, ok := res.Output.(map[string]any)[tt.wantKey]; !ok {
				t.Fatalf("output = %v, want key %s", res.Output, tt.wantKey)
			}
		})
	}
	if _, _, err := ParseRef("pay@sha256:XYZ"); err == nil {
		t.Fatal("malformed pin accepted")
	}
	if err := r.Remove(ctx, "pay"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, "pay"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed tool resolved: %v", err)
	}
	if _, err := r.Resolve(ctx, "pay@sha256:"+v1.ModuleSHA256); err != nil {
		t.Fatalf("pinned version lost after remove: %v", err)
	}
	if err := r.Remove(ctx, "pay"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove = %v", err)
	}
}

// Ensure List returns current versions sorted and the manifest hash is the
// canonical one (independent of how the manifest was written).
func TestRegistryListAndManifestHash(t *testing.T) {
	r := newRegistry(t, "poll", "audit_log")
	recs, err := r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Name != "audit_log" || recs[1].Name != "poll" {
		t.Fatalf("list = %+v", recs)
	}
	m, err := ParseManifest(recs[1].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	_, sum, err := m.canonical()
	if err != nil || sum != recs[1].ManifestSHA256 {
		t.Fatalf("manifest hash %s, stored %s (%v)", sum, recs[1].ManifestSHA256, err)
	}
}

// Ensure manifests are decoded strictly and every bad field is named.
func TestParseManifest(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{name: "ok", json: `{"name":"a","capabilities":["nanovm:http"],"allowed_hosts":["*.x.com"],"isolation":"pool","pool_size":2}`},
		{name: "unknown field", json: `{"name":"a","capabilites":[]}`, want: `unknown field "capabilites"`},
		{name: "bad name", json: `{"name":"A b"}`, want: "name must match"},
		{name: "unknown capability", json: `{"name":"a","capabilities":["wasi:sock"]}`, want: `unknown capability "wasi:sock"`},
		{name: "hosts without http", json: `{"name":"a","allowed_hosts":["x.com"]}`, want: "allowed_hosts needs capability nanovm:http"},
		{name: "mount without fs", json: `{"name":"a","mounts":[{"host_path":"/tmp","guest_path":"/d","read_only":true}]}`, want: "mounts need capability wasi:fs"},
		{name: "relative guest path", json: `{"name":"a","capabilities":["wasi:fs"],"mounts":[{"host_path":"/tmp","guest_path":"d"}]}`, want: "mounts[0].guest_path"},
		{name: "bad isolation", json: `{"name":"a","isolation":"shared"}`, want: `isolation must be "fresh" or "pool", not "shared"`},
		{name: "pool size without pool", json: `{"name":"a","pool_size":3}`, want: "pool_size"},
		{name: "bad limits", json: `{"name":"a","limits":{"memory_mib":-1}}`, want: "limits.memory_mib"},
		{name: "bad schema", json: `{"name":"a","input_schema":{"type":"nonsense"}}`, want: "input_schema"},
		{name: "trailing", json: `{"name":"a"} {}`, want: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.json))
			failedKind(t, err, ErrInvalidManifest, tt.want)
		})
	}
}

// FuzzParseManifest ensures the manifest decoder never panics and that
// whatever it accepts re-encodes to a manifest it accepts again.
func FuzzParseManifest(f *testing.F) {
	for _, m := range modules(f) {
		f.Add(m.Manifest)
	}
	f.Add([]byte(`{"name":"a","limits":{"timeout_ms":5}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		canon, _, err := m.canonical()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseManifest(canon); err != nil {
			t.Fatalf("canonical form rejected: %v\n%s", err, canon)
		}
	})
}

// Ensure a pooled tool reuses a warm instance (its memory persists), a
// failed instance is discarded, and results match fresh calls.
func TestPool(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "validate_amount")
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "pooled"; m.Isolation = IsolationPool; m.PoolSize = 2 })
	register(t, r, "get_order_amount", nil)
	for i := 0; i < 3; i++ {
		a, err := r.Call(ctx, "pooled", CallRequest{Args: map[string]any{"order_id": "o-9"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Call(ctx, "get_order_amount", CallRequest{Args: map[string]any{"order_id": "o-9"}})
		if err != nil {
			t.Fatal(err)
		}
		if a.Output.(map[string]any)["amount"] != b.Output.(map[string]any)["amount"] {
			t.Fatalf("pooled %v != fresh %v", a.Output, b.Output)
		}
	}
	tool, err := r.Resolve(ctx, "pooled")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tool.pool.idle); n != 1 {
		t.Fatalf("idle instances after sequential calls = %d, want 1 (reused)", n)
	}
	// A schema failure never reaches the instance; a tool-level error
	// (exit 0 with {"error"}) keeps it.
	if _, err := r.Call(ctx, "pooled", CallRequest{Args: map[string]any{}}); !errors.Is(err, ErrInvalidArgs) {
		t.Fatalf("err = %v", err)
	}
	// An instance that times out is closed, not returned to the pool.
	if _, err := r.Call(ctx, "pooled", CallRequest{Args: map[string]any{"order_id": "o-9"}, Timeout: 1}); err != nil && !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if n := len(tool.pool.idle); n > 1 {
		t.Fatalf("idle instances = %d, want at most 1", n)
	}
}

// Ensure the pool refuses modules without nanovm_call at registration.
func TestPoolNeedsEntryPoint(t *testing.T) {
	mods := modules(t)
	r := newRegistry(t)
	m, _ := ParseManifest(mods["loop"].Manifest)
	m.Isolation = IsolationPool
	if _, err := r.Register(context.Background(), m, mods["loop"].Wasm); err == nil || !strings.Contains(err.Error(), "nanovm_call") {
		t.Fatalf("err = %v", err)
	}
}

// Ensure many goroutines calling fresh, pooled and hostile tools at once
// neither race nor cross results (run under -race).
func TestHammer(t *testing.T) {
	r := newRegistry(t, "get_order_amount", "trap")
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "pooled"; m.Isolation = IsolationPool; m.PoolSize = 3 })
	register(t, r, "secret_echo", nil)
	want := map[string]float64{}
	for i := 0; i < 8; i++ {
		id := string(rune('a' + i))
		want[id] = 1 + float64(fnv(id)%100000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				id := string(rune('a' + (g+i)%8))
				tool := []string{"get_order_amount", "pooled"}[(g+i)%2]
				res, err := r.Call(context.Background(), tool, CallRequest{Args: map[string]any{"order_id": id}})
				if err != nil {
					errs <- err
					return
				}
				if got := res.Output.(map[string]any)["amount"]; got != want[id] {
					errs <- errors.New(tool + ": crossed result for " + id)
					return
				}
				if i%5 == 0 {
					if _, err := r.Call(context.Background(), "trap", CallRequest{}); !errors.Is(err, ErrTrap) {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFirstCallsCompileOnce ensures concurrent first calls of a tool whose
// compilation waits for its first call (a bundled tool) compile it once
// and all succeed: a second compilation of the same bytes while the first
// one's instances run made wazero v1.12 rewrite the shared entry
// preambles under them (a data race -race reports).
func TestFirstCallsCompileOnce(t *testing.T) {
	ctx := context.Background()
	mods := modules(t)
	h := newHost(t, HostOptions{})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	m, err := ParseManifest(mods["get_order_amount"].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterAs(ctx, toolrecord.SourceBundled, m, mods["get_order_amount"].Wasm); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Call(ctx, m.Name, CallRequest{Args: map[string]any{"order_id": "o-1"}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n := h.Stats().Compilations; n != 1 {
		t.Errorf("%d compilations of one module, want 1", n)
	}
}

// switchGrants is gate C with an answer the test changes between calls.
type switchGrants struct {
	mu sync.Mutex
	g  Grant
}

func (s *switchGrants) set(g Grant) { s.mu.Lock(); s.g = g; s.mu.Unlock() }

func (s *switchGrants) Grant(GrantRequest) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.g
	g.Capabilities = maps.Clone(g.Capabilities)
	g.Secrets = slices.Clone(g.Secrets)
	return g, nil
}

// TestResolveCachePerGrant: Resolve builds one Tool per effective grant
// (the capabilities held, their authorities, the secrets) and hands the
// same one back while the grant stays; a grant that changes in any of the
// three gets a Tool built for it, and a capability the manifest does not
// ask for changes nothing.
func TestResolveCachePerGrant(t *testing.T) {
	gate := &switchGrants{}
	full := Grant{Capabilities: map[string]string{"nanovm:secrets": AuthorityPolicy, "nanovm:log": AuthorityPolicy}, Secrets: []string{AnySecret}}
	gate.set(full)
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: gate})
	register(t, r, "secret_echo", nil)
	ctx := context.Background()
	resolve := func() *Tool {
		t.Helper()
		tool, err := r.Resolve(ctx, "secret_echo")
		if err != nil {
			t.Fatal(err)
		}
		return tool
	}
	first := resolve()
	if again := resolve(); again != first {
		t.Fatal("the same grant built a second Tool")
	}
	for _, tc := range []struct {
		name string
		g    Grant
		same bool
	}{
		{"capability not asked for", Grant{Capabilities: map[string]string{"nanovm:secrets": AuthorityPolicy, "nanovm:log": AuthorityPolicy, "nanovm:http": AuthorityPolicy}, Secrets: []string{AnySecret}}, true},
		{"secrets repeated and reordered", Grant{Capabilities: full.Capabilities, Secrets: []string{AnySecret, AnySecret}}, true},
		{"another authority", Grant{Capabilities: map[string]string{"nanovm:secrets": AuthorityManifest, "nanovm:log": AuthorityPolicy}, Secrets: []string{AnySecret}}, false},
		{"other secrets", Grant{Capabilities: full.Capabilities, Secrets: []string{"card"}}, false},
	} {
		gate.set(tc.g)
		got := resolve()
		if (got == first) != tc.same {
			t.Errorf("%s: same Tool %v, want %v", tc.name, got == first, tc.same)
		}
		if !tc.same && (len(got.Authority) != len(tc.g.Capabilities) || got.Authority["nanovm:secrets"] != tc.g.Capabilities["nanovm:secrets"]) {
			t.Errorf("%s: Authority %v for grant %v", tc.name, got.Authority, tc.g.Capabilities)
		}
	}
	gate.set(full)
	if got := resolve(); got != first {
		t.Error("the first grant again built a second Tool")
	}
}

// TestResolveCachedAllocs: resolving a tool already built under frozen
// grants (here the default grant) allocates nothing: gate C is not asked
// again.
func TestResolveCachedAllocs(t *testing.T) {
	r := newRegistry(t, "poll")
	ctx := context.Background()
	if _, err := r.Resolve(ctx, "poll"); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := r.Resolve(ctx, "poll"); err != nil {
			t.Fatal(err)
		}
	})
	if n > 0 {
		t.Errorf("Resolve of a built tool: %v allocations, want none", n)
	}
}

// countGrants is gate C granting what the manifest asks (as DefaultGrant
// does), counting the requests per source; frozen says what GrantsFrozen
// reports.
type countGrants struct {
	mu     sync.Mutex
	asked  map[toolrecord.Source]int
	frozen bool
}

func (c *countGrants) Grant(req GrantRequest) (Grant, error) {
	c.mu.Lock()
	c.asked[req.Source]++
	c.mu.Unlock()
	return DefaultGrant(req), nil
}

func (c *countGrants) GrantsFrozen() bool { return c.frozen }

func (c *countGrants) count(src toolrecord.Source) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked[src]
}

// Ensure frozen grants are asked once per version, and the Tool kept for
// a version never answers for another: a name moved to a new version
// resolves to that version's Tool (and gate C is asked about it), a pinned
// ref still to the old one, and the same bytes registered by another
// source get their own grant and Tool. Grants that are not frozen are
// asked at every resolve.
func TestResolveFrozenGrants(t *testing.T) {
	ctx := context.Background()
	gate := &countGrants{asked: map[toolrecord.Source]int{}, frozen: true}
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: gate})
	resolve := func(ref string) *Tool {
		t.Helper()
		tool, err := r.Resolve(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return tool
	}
	m, wasm := editedModule(t, "poll", func(m *Manifest) { m.Capabilities = []string{string(CapLog)} })
	if _, err := r.RegisterAs(ctx, toolrecord.SourceUpload, m, wasm); err != nil {
		t.Fatal(err)
	}
	asked := gate.count(toolrecord.SourceUpload) // registration asks too
	up := resolve("poll")
	for range 3 {
		if again := resolve("poll"); again != up {
			t.Fatal("frozen grants: a second Tool for one version")
		}
	}
	if n := gate.count(toolrecord.SourceUpload) - asked; n != 1 {
		t.Fatalf("frozen grants asked %d times for one version, want once", n)
	}
	if up.Source != toolrecord.SourceUpload || up.Authority[string(CapLog)] != AuthorityUploadDefault {
		t.Fatalf("upload resolved as %s with %v", up.Source, up.Authority)
	}

	// The operator registers the same bytes: another version (its source),
	// its own grant.
	if _, err := r.Register(ctx, m, wasm); err != nil {
		t.Fatal(err)
	}
	op := resolve("poll")
	if op == up || op.Source != toolrecord.SourceOperator || op.Authority[string(CapLog)] != AuthorityManifest {
		t.Fatalf("operator version resolved as %s with %v (the upload's Tool: %v)", op.Source, op.Authority, op == up)
	}
	// A new manifest: a new version, whose Tool is built for it.
	m2 := m
	m2.Description = "another version"
	rec2, err := r.Register(ctx, m2, wasm)
	if err != nil {
		t.Fatal(err)
	}
	v2 := resolve("poll")
	if v2 == op || v2.Record.ManifestSHA256 != rec2.ManifestSHA256 || v2.Manifest.Description != "another version" {
		t.Fatalf("after the replace, poll resolved to manifest %s, want %s", v2.Record.ManifestSHA256, rec2.ManifestSHA256)
	}
	if again := resolve("poll"); again != v2 {
		t.Fatal("frozen grants: a second Tool for the new version")
	}
	if pinned := resolve("poll@sha256:" + rec2.ModuleSHA256); pinned != v2 {
		t.Fatal("the pinned ref of the current version resolved to another Tool")
	}

	// Not frozen: asked at every resolve.
	live := &countGrants{asked: map[toolrecord.Source]int{}}
	r = NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{Grants: live})
	if _, err := r.Register(ctx, m, wasm); err != nil {
		t.Fatal(err)
	}
	asked = live.count(toolrecord.SourceOperator)
	for range 3 {
		resolve("poll")
	}
	if n := live.count(toolrecord.SourceOperator) - asked; n != 3 {
		t.Fatalf("grants that are not frozen asked %d times for 3 resolves, want 3", n)
	}
}
