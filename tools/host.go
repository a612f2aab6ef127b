package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// SecretResolver resolves a vault://secret/<id> ref for one execution, just
// in time, inside a call of a tool granted nanovm:secrets.
type SecretResolver interface {
	ResolveSecret(ctx context.Context, executionID, ref string) (string, error)
}

// HostOptions configures a Host. The zero value is a working host with no
// disk cache, no secrets and a default HTTP client.
type HostOptions struct {
	// CacheDir, when set, keeps compiled machine code there so a restart
	// does not recompile. "" means an in-memory cache only.
	CacheDir string
	// Secrets resolves nanovm.secret_get. nil means no secret resolves.
	Secrets SecretResolver
	// HTTPClient performs nanovm.http_request. nil means a client on
	// http.DefaultTransport. Its CheckRedirect is replaced so that every
	// redirect is checked against the tool's allowed hosts.
	HTTPClient *http.Client
	// HTTPTimeout bounds one nanovm.http_request (and never outlives the
	// call); default 5s.
	HTTPTimeout time.Duration
	// HTTPMaxResponseBytes caps a response body; default 1 MiB.
	HTTPMaxResponseBytes int64
	// Ceilings are the server-wide limits no manifest may exceed, and the
	// memory budget of all instances alive at once; zero fields take their
	// defaults (DefaultCeilings). Ceilings.CallTimeout caps any per-call
	// timeout, however it was set.
	Ceilings Ceilings
	// ProtectedPaths are the server's own files and directories (its
	// database, vault key, compilation cache, socket and lock): a mount
	// whose host directory is, contains or lies inside one of them is
	// refused at registration and at resolve, whoever configured it.
	// Relative paths are taken from the working directory; symlinks are
	// resolved on both sides before comparing.
	ProtectedPaths []string
	// Logger receives host-side events (instance discarded, compile
	// errors). nil means slog.Default().
	Logger *slog.Logger
}

// Host owns the wazero runtime every tool runs in, the compilation cache,
// and the per-capability-set host modules. One Host serves a process; it is
// safe for concurrent use.
type Host struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
	opts  HostOptions
	http  *http.Client

	// wasiFuncs are wazero's WASI functions, taken from a compiled (never
	// instantiated) WASI module so that a subset can be linked per set.
	wasiFuncs map[string]api.FunctionDefinition
	empty     api.Module

	closing atomic.Bool
	// budget holds the guest memory of every live instance.
	budget budget
	// pools are every pool, whose idle instances reclaim may close.
	poolsMu sync.Mutex
	pools   []*pool

	mu       sync.Mutex
	links    map[string]*linkSet
	compiled map[string]*compiledModule
	closed   bool
}

// linkSet is the pair of host module instances one capability set links;
// the import resolver returns them in place of the real module names.
type linkSet struct {
	wasi, nanovm api.Module
	resolver     experimental.ImportResolver
}

// NewHost creates the runtime. Close releases it.
func NewHost(ctx context.Context, opts HostOptions) (*Host, error) {
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = 5 * time.Second
	}
	if opts.HTTPMaxResponseBytes <= 0 {
		opts.HTTPMaxResponseBytes = 1 << 20
	}
	opts.Ceilings = opts.Ceilings.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheDir != "" {
		// The compiled code a restart trusts is the host's own file.
		opts.ProtectedPaths = append(slices.Clip(opts.ProtectedPaths), opts.CacheDir)
	}
	h := &Host{opts: opts, links: map[string]*linkSet{}, compiled: map[string]*compiledModule{}}
	h.budget.limit = uint64(opts.Ceilings.MemoryBudgetMiB) << 20
	var err error
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("create compilation cache %q: %w", opts.CacheDir, err)
		}
		h.cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open compilation cache %q: %w", opts.CacheDir, err)
		}
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithCompilationCache(h.cache).
		WithCustomSections(true)
	h.rt = wazero.NewRuntimeWithConfig(ctx, cfg)

	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	h.http = client

	wasiCompiled, err := wasi_snapshot_preview1.NewBuilder(h.rt).Compile(ctx)
	if err != nil {
		_ = h.Close(ctx)
		return nil, fmt.Errorf("compile wasi host module: %w", err)
	}
	h.wasiFuncs = wasiCompiled.ExportedFunctions()
	// An import from any module but the two linked ones resolves to this
	// empty module and so fails, even if a module of that name exists.
	if h.empty, err = h.instantiateHost(ctx, h.rt.NewHostModuleBuilder("nanovm-link/none")); err != nil {
		_ = h.Close(ctx)
		return nil, fmt.Errorf("instantiate empty host module: %w", err)
	}
	return h, nil
}

// Close releases the runtime, every instance and pool, and the in-memory
// part of the compilation cache. The disk cache stays.
func (h *Host) Close(ctx context.Context) error {
	// Idle pooled instances run no guest: close them first, the normal
	// way, so their memory is unmapped rather than left to the process.
	h.poolsMu.Lock()
	pools := h.pools
	h.pools = nil
	h.poolsMu.Unlock()
	for _, p := range pools {
		for w := p.takeIdle(); w != nil; w = p.takeIdle() {
			w.close()
		}
	}
	h.closing.Store(true)
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	err := h.rt.Close(ctx)
	if cerr := h.cache.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close host: %w", err)
	}
	return nil
}

// Ceilings returns the ceilings in force, defaults applied.
func (h *Host) Ceilings() Ceilings { return h.opts.Ceilings }

// link returns the host modules for s, creating them on first use. This is
// gate B: a function outside s is not in these modules, so an import of it
// cannot resolve.
func (h *Host) link(ctx context.Context, s capSet) (*linkSet, error) {
	key := s.key()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if ls, ok := h.links[key]; ok {
		return ls, nil
	}
	wb := h.rt.NewHostModuleBuilder("nanovm-link/wasi/" + key)
	for name, def := range h.wasiFuncs {
		if !s.allows(wasiModule + "." + name) {
			continue
		}
		fb := wb.NewFunctionBuilder()
		switch fn := def.GoFunction().(type) {
		case api.GoModuleFunction:
			fb = fb.WithGoModuleFunction(fn, def.ParamTypes(), def.ResultTypes())
		case api.GoFunction:
			fb = fb.WithGoFunction(fn, def.ParamTypes(), def.ResultTypes())
		default:
			return nil, fmt.Errorf("link wasi %s: unexpected host function %T", name, fn)
		}
		fb.WithParameterNames(def.ParamNames()...).Export(name)
	}
	wasiMod, err := h.instantiateHost(ctx, wb)
	if err != nil {
		return nil, fmt.Errorf("link wasi for [%s]: %w", key, err)
	}
	nb := h.rt.NewHostModuleBuilder("nanovm-link/nanovm/" + key)
	h.exportNanovm(nb, s)
	nanovmMod, err := h.instantiateHost(ctx, nb)
	if err != nil {
		_ = wasiMod.Close(ctx)
		return nil, fmt.Errorf("link nanovm for [%s]: %w", key, err)
	}
	ls := &linkSet{wasi: wasiMod, nanovm: nanovmMod}
	empty := h.empty
	ls.resolver = func(name string) api.Module {
		switch name {
		case wasiModule:
			return ls.wasi
		case nanovmModule:
			return ls.nanovm
		default:
			return empty
		}
	}
	h.links[key] = ls
	return ls, nil
}

// instantiateHost instantiates a host module through the runtime rather
// than HostModuleBuilder.Instantiate, whose wrapper the import resolver
// cannot link against.
func (h *Host) instantiateHost(ctx context.Context, b wazero.HostModuleBuilder) (api.Module, error) {
	c, err := b.Compile(ctx)
	if err != nil {
		return nil, err
	}
	return h.rt.InstantiateModule(ctx, c, wazero.NewModuleConfig())
}

// compiledModule is a module compiled once per content hash.
type compiledModule struct {
	sha256   string
	code     wazero.CompiledModule
	imports  []string // "module.name", in declaration order
	hasStart bool     // a WASI command: _start
	hasInit  bool     // a WASI reactor: _initialize
	hasCall  bool     // nanovm_call, the pooled entry point
	minPages uint32   // declared minimum of an exported or imported memory
	// tableBytes is what the module's tables take at their declared
	// minimum, charged to the memory budget per instance.
	tableBytes uint64
}

// abiSection is the optional custom section naming the guest ABI version.
const abiSection = "nanovm.abi"

// compile compiles wasm (or returns the module compiled earlier for the
// same bytes) and reads what gate A and the call path need.
func (h *Host) compile(ctx context.Context, wasm []byte) (*compiledModule, error) {
	sum := sha256Hex(wasm)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if cm, ok := h.compiled[sum]; ok {
		h.mu.Unlock()
		return cm, nil
	}
	h.mu.Unlock()

	code, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile module %.12s: %w", sum, err)
	}
	cm := &compiledModule{sha256: sum, code: code}
	for _, f := range code.ImportedFunctions() {
		mod, name, _ := f.Import()
		cm.imports = append(cm.imports, mod+"."+name)
	}
	for _, m := range code.ImportedMemories() {
		mod, name, _ := m.Import()
		cm.imports = append(cm.imports, mod+"."+name)
	}
	for _, m := range code.ExportedMemories() {
		cm.minPages = max(cm.minPages, m.Min())
	}
	exports := code.ExportedFunctions()
	_, cm.hasStart = exports["_start"]
	_, cm.hasInit = exports["_initialize"]
	if def, ok := exports["nanovm_call"]; ok {
		if len(def.ParamTypes()) != 0 || len(def.ResultTypes()) != 1 || def.ResultTypes()[0] != api.ValueTypeI32 {
			_ = code.Close(ctx)
			return nil, fmt.Errorf("compile module %.12s: nanovm_call must be () -> i32", sum)
		}
		cm.hasCall = true
	}
	if !cm.hasStart && !cm.hasCall {
		_ = code.Close(ctx)
		return nil, fmt.Errorf("compile module %.12s: exports neither _start nor nanovm_call", sum)
	}
	for _, s := range code.CustomSections() {
		if s.Name() == abiSection && string(s.Data()) != "1" {
			_ = code.Close(ctx)
			return nil, fmt.Errorf("compile module %.12s: guest ABI %q not supported (this host speaks 1)", sum, s.Data())
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.compiled[sum]; ok { // lost a race: keep the first
		_ = code.Close(ctx)
		return prev, nil
	}
	h.compiled[sum] = cm
	return cm, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
