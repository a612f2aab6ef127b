package tools

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
)

// Store is the persistence the registry needs; *store.DB implements it with
// bbolt and NewMemoryStore in memory.
type Store interface {
	// PutToolVersion stores module bytes by hash (once), records the
	// version and makes it current for rec.Name.
	PutToolVersion(ctx context.Context, rec store.ToolRecord, module []byte) error
	// Tool returns the current version; store.ErrNotFound if none.
	Tool(ctx context.Context, name string) (store.ToolRecord, error)
	// ToolVersion returns one version; store.ErrNotFound if none.
	ToolVersion(ctx context.Context, name, moduleSHA256 string) (store.ToolRecord, error)
	// Module returns module bytes; store.ErrNotFound if none.
	Module(ctx context.Context, moduleSHA256 string) ([]byte, error)
	// Tools returns the current versions, sorted by name.
	Tools(ctx context.Context) ([]store.ToolRecord, error)
	// RemoveTool unregisters name; versions and modules stay for the
	// audit trail; store.ErrNotFound if none.
	RemoveTool(ctx context.Context, name string) error
}

// RegistryOptions configures a Registry. The zero value grants every tool
// what its manifest asks and stamps records with time.Now.
type RegistryOptions struct {
	// Grants is gate C. nil grants what each manifest asks.
	Grants Grants
	// Now stamps RegisteredAt; nil means time.Now.
	Now func() time.Time
}

// Registry registers tools (gate A), resolves names and pinned versions to
// ready-to-call Tools, and keeps compiled code and warm pools per version.
// It is safe for concurrent use.
type Registry struct {
	host *Host
	st   Store
	opts RegistryOptions

	mu       sync.Mutex
	versions map[string]*version // key: module sha + "/" + manifest sha
	// current caches each name's current version so that a call does not
	// read the store. Register and Remove through this registry keep it
	// true; the store has one writer process (the primary), which owns it.
	current map[string]store.ToolRecord
}

// version caches one decoded manifest and its Tools per effective set.
type version struct {
	manifest Manifest
	byCaps   map[string]*Tool
}

// NewRegistry returns a registry over st running tools on h.
func NewRegistry(h *Host, st Store, opts RegistryOptions) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Registry{host: h, st: st, opts: opts, versions: map[string]*version{}, current: map[string]store.ToolRecord{}}
}

// grant asks gate C, refusing anything it adds to the request.
func (r *Registry) grant(m *Manifest) ([]string, error) {
	if r.opts.Grants == nil {
		return m.Capabilities, nil
	}
	g, err := r.opts.Grants.Grant(m.Name, m.Capabilities)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCapabilityDenied, err)
	}
	var out []string
	for _, c := range g {
		for _, want := range m.Capabilities {
			if c == want {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

// Register validates m, compiles wasm, checks its imports against the
// capabilities granted (gate A) and stores the version, which becomes
// the current one for m.Name.
func (r *Registry) Register(ctx context.Context, m Manifest, wasm []byte) (store.ToolRecord, error) {
	if err := m.Validate(); err != nil {
		return store.ToolRecord{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	granted, err := r.grant(&m)
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	// Read, check and admit before compiling: a refused module is never
	// compiled and leaves nothing behind.
	cm, err := r.host.load(ctx, wasm, func(cm *compiledModule) error { return r.admit(&m, cm, granted) })
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	canon, sum, err := m.canonical()
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	rec := store.ToolRecord{
		Name:           m.Name,
		ModuleSHA256:   cm.sha256,
		ManifestSHA256: sum,
		Manifest:       canon,
		RegisteredAt:   r.opts.Now().UTC(),
	}
	if err := r.st.PutToolVersion(ctx, rec, wasm); err != nil {
		return store.ToolRecord{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	r.mu.Lock()
	r.current[m.Name] = rec
	r.mu.Unlock()
	return rec, nil
}

// admit is gate A plus the checks of the module against its manifest,
// all made on the structural read, before anything is compiled.
func (r *Registry) admit(m *Manifest, cm *compiledModule, granted []string) error {
	if err := r.host.gateA(cm, newCapSet(granted)); err != nil {
		return err
	}
	memStart := uint64(cm.minPages) << 16
	if cm.tableBytes == 0 && memStart > m.memoryBytes() {
		return detail(ErrMemoryLimit, "module needs %d KiB of memory at start, memory limit is %s", memStart>>10, mib(m.memoryBytes()))
	}
	if memStart+cm.tableBytes > m.memoryBytes() {
		return detail(ErrMemoryLimit, "module needs %d KiB of memory at start and up to %d KiB for its tables (%s), memory limit is %s",
			memStart>>10, cm.tableBytes>>10, strings.Join(cm.tables, "; "), mib(m.memoryBytes()))
	}
	if m.Isolation == IsolationPool && !cm.hasCall {
		return fmt.Errorf("%w: isolation %q needs the module to export nanovm_call", ErrInvalidManifest, IsolationPool)
	}
	return nil
}

// Get returns the current version of name.
func (r *Registry) Get(ctx context.Context, name string) (store.ToolRecord, error) {
	rec, err := r.st.Tool(ctx, name)
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("get tool %q: %w", name, err)
	}
	return rec, nil
}

// List returns the current version of every tool, sorted by name.
func (r *Registry) List(ctx context.Context) ([]store.ToolRecord, error) {
	recs, err := r.st.Tools(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	return recs, nil
}

// Remove unregisters name. Its versions stay resolvable by pinned hash so
// past executions can still name (and replay) the code they ran.
func (r *Registry) Remove(ctx context.Context, name string) error {
	r.mu.Lock()
	delete(r.current, name)
	r.mu.Unlock()
	if err := r.st.RemoveTool(ctx, name); err != nil {
		return fmt.Errorf("remove tool %q: %w", name, err)
	}
	return nil
}

var pinRE = regexp.MustCompile(`^([^@]+)@sha256:([0-9a-f]{64})$`)

// ParseRef splits "name" or "name@sha256:<hex>" into name and module hash
// ("" when not pinned).
func ParseRef(ref string) (name, moduleSHA256 string, err error) {
	if !strings.Contains(ref, "@") {
		return ref, "", nil
	}
	m := pinRE.FindStringSubmatch(ref)
	if m == nil {
		return "", "", fmt.Errorf("parse tool ref %q: want name or name@sha256:<64 lowercase hex>", ref)
	}
	return m[1], m[2], nil
}

// Resolve returns the Tool a program's "tool" field names: the current
// version of "name", or exactly the module "name@sha256:<hex>" pins. Gate C
// is asked again on every resolve, so a policy change applies to the next
// call; gate A is re-checked against the effective set.
func (r *Registry) Resolve(ctx context.Context, ref string) (*Tool, error) {
	name, pin, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var rec store.ToolRecord
	if pin == "" {
		r.mu.Lock()
		cur, ok := r.current[name]
		r.mu.Unlock()
		if ok {
			rec = cur
		} else if rec, err = r.st.Tool(ctx, name); err == nil {
			r.mu.Lock()
			r.current[name] = rec
			r.mu.Unlock()
		}
	} else {
		rec, err = r.st.ToolVersion(ctx, name, pin)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	vkey := rec.ModuleSHA256 + "/" + rec.ManifestSHA256
	r.mu.Lock()
	v, ok := r.versions[vkey]
	r.mu.Unlock()
	if !ok {
		m, err := ParseManifest(rec.Manifest)
		if err != nil {
			return nil, fmt.Errorf("resolve tool %q: stored manifest: %w", ref, err)
		}
		v = &version{manifest: m, byCaps: map[string]*Tool{}}
		r.mu.Lock()
		if prev, ok := r.versions[vkey]; ok {
			v = prev
		} else {
			r.versions[vkey] = v
		}
		r.mu.Unlock()
	}
	granted, err := r.grant(&v.manifest)
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	ckey := newCapSet(granted).key()
	r.mu.Lock()
	t, ok := v.byCaps[ckey]
	r.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err = r.build(ctx, rec, v.manifest, granted)
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := v.byCaps[ckey]; ok {
		return prev, nil
	}
	v.byCaps[ckey] = t
	return t, nil
}

func (r *Registry) build(ctx context.Context, rec store.ToolRecord, m Manifest, granted []string) (*Tool, error) {
	wasm, err := r.st.Module(ctx, rec.ModuleSHA256)
	if err != nil {
		return nil, fmt.Errorf("load module: %w", err)
	}
	if got := sha256Hex(wasm); got != rec.ModuleSHA256 {
		return nil, fmt.Errorf("load module: stored bytes hash to %s, not %s", got, rec.ModuleSHA256)
	}
	cm, err := r.host.load(ctx, wasm, func(cm *compiledModule) error { return r.admit(&m, cm, granted) })
	if err != nil {
		return nil, err
	}
	return r.host.prepare(ctx, rec, m, cm, granted)
}

// Call resolves ref and calls it.
func (r *Registry) Call(ctx context.Context, ref string, req CallRequest) (CallResult, error) {
	t, err := r.Resolve(ctx, ref)
	if err != nil {
		return CallResult{}, err
	}
	return t.Call(ctx, req)
}

// Warm resolves every current tool, compiling each (from the disk cache
// when one is configured) so the first call pays nothing. It returns the
// errors of the tools that failed, joined; the others stay usable.
func (r *Registry) Warm(ctx context.Context) error {
	recs, err := r.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range recs {
		if _, err := r.Resolve(ctx, rec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
