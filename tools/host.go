package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// SecretResolver resolves a vault://secret/<id> ref for one run, just
// in time, inside a call of a tool granted nanovm:secrets.
type SecretResolver interface {
	ResolveSecret(ctx context.Context, traceID, ref string) (string, error)
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
	// ConfigPaths are the operator's trust anchors (the policy file, the
	// tools folder): whoever writes them decides, at the next start, which
	// tools run as the operator's. A mount that is, contains or lies inside
	// one of them may only be read-only; compared as ProtectedPaths are.
	ConfigPaths []string
	// Logger receives host-side events (instance discarded, compile
	// errors). nil means slog.Default().
	Logger *slog.Logger
	// ModuleLimits are the ceilings every module is read against before
	// it is compiled, the compile deadline and the compilations at once.
	// Zero fields take DefaultModuleLimits.
	ModuleLimits ModuleLimits
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
	// hostSigs is the signature of every host function a guest may
	// import, by "module.name": what gate A compares imports with.
	hostSigs map[string]wasmbin.FuncType
	empty    api.Module
	limits   ModuleLimits
	// compileSlots holds one token per module being read (inspect) or
	// compiled.
	compileSlots chan struct{}
	// calls holds one token per guest call running (Ceilings.CallsInFlight).
	calls chan struct{}
	// sessions holds each session's share of calls
	// (Ceilings.CallsInFlightPerSession).
	sessions sessionShares

	closing atomic.Bool
	// running links the stop flags of the instances running a call
	// (callState.armStop), which Close sets.
	runMu   sync.Mutex
	running *stopper
	// budget holds the guest memory of every live instance.
	budget budget
	// stats are the counters Stats reports.
	stats hostStats
	// pools are every pool, whose idle instances reclaim may close.
	poolsMu sync.Mutex
	pools   []*pool
	// keepers are the resettable tools, whose kept instances (reset.go)
	// reclaim may close too.
	keepers []*Tool

	mu       sync.Mutex
	links    map[string]*linkSet
	compiled map[string]*compiledModule
	// compiling holds, per module hash, a channel closed when the one
	// compilation in flight for it ends: a second load of the same bytes
	// waits for it instead of compiling again, since wazero v1.12
	// rewrites a cached module's entry preambles on a second
	// CompileModule while the first one's instances read them.
	compiling map[string]chan struct{}
	closed    bool
}

// linkSet is the pair of host module instances one capability set links;
// the import resolver returns them in place of the real module names.
type linkSet struct {
	wasi, nanovm api.Module
	extism       api.Module // extism:host/env, the functions s grants
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
	opts.ModuleLimits = opts.ModuleLimits.withDefaults()
	h := &Host{opts: opts, links: map[string]*linkSet{}, compiled: map[string]*compiledModule{}, compiling: map[string]chan struct{}{}, limits: opts.ModuleLimits}
	h.compileSlots = make(chan struct{}, h.limits.Compilations)
	h.calls = make(chan struct{}, opts.Ceilings.CallsInFlight)
	h.sessions.per = opts.Ceilings.CallsInFlightPerSession
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
	// No WithCloseOnContextDone: every module checks its own stop flag
	// (wasmbin.Instrument, stopper), at a fraction of the cost.
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		// Custom sections are not kept, nor read for DWARF line info:
		// nothing reads them from a compiled module, and a compiled module
		// lives as long as the host, so a module carrying large custom
		// sections (a Go build's debug info, or padding) would otherwise
		// hold a copy of them in memory for good. wasmbin still checks
		// them at registration. A guest trap's stack trace then names
		// functions, not source lines, which nobody here needs from an
		// untrusted module.
		WithCustomSections(false).
		WithDebugInfoEnabled(false)
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
	if h.hostSigs, err = h.readHostSigs(ctx); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}
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
	pools, keepers := h.pools, h.keepers
	h.pools, h.keepers = nil, nil
	h.poolsMu.Unlock()
	for _, p := range pools {
		for w := p.takeIdle(); w != nil; w = p.takeIdle() {
			w.close()
		}
	}
	h.closing.Store(true) // no kept instance is added from here on
	for _, t := range keepers {
		for s := t.takeKept(); s != nil; s = t.takeKept() {
			s.closeKept(h)
		}
	}
	h.stopRunning(ctx) // running guests stop at their next check
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
	ls := &linkSet{wasi: wasiMod}
	done := []api.Module{wasiMod}
	for _, om := range ownModules {
		m, err := h.instantiateHost(ctx, om.build(h, "nanovm-link/"+om.what+"/"+key, s))
		if err != nil {
			for _, d := range done {
				_ = d.Close(ctx)
			}
			return nil, fmt.Errorf("link %s for [%s]: %w", om.what, key, err)
		}
		done = append(done, m)
		*om.in(ls) = m
	}
	empty := h.empty
	ls.resolver = func(name string) api.Module {
		switch name {
		case wasiModule:
			return ls.wasi
		case nanovmModule:
			return ls.nanovm
		case extismEnvModule:
			return ls.extism
		default:
			return empty
		}
	}
	h.links[key] = ls
	return ls, nil
}

// ownModule is a host module this host builds itself, holding the
// functions a capability set grants.
type ownModule struct {
	what   string // how builder names and errors say it
	module string // the module name guests import from
	export func(h *Host, b wazero.HostModuleBuilder, s capSet)
	in     func(ls *linkSet) *api.Module // where link keeps its instance
}

// ownModules are the nanovm functions and extism:host/env, in the order
// link instantiates them.
var ownModules = []ownModule{
	{what: "nanovm", module: nanovmModule, export: (*Host).exportNanovm, in: func(ls *linkSet) *api.Module { return &ls.nanovm }},
	{what: "extism", module: extismEnvModule, export: (*Host).exportExtism, in: func(ls *linkSet) *api.Module { return &ls.extism }},
}

// build returns a builder of the module, named name, with the functions s
// grants.
func (om ownModule) build(h *Host, name string, s capSet) wazero.HostModuleBuilder {
	b := h.rt.NewHostModuleBuilder(name)
	om.export(h, b, s)
	return b
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

// compiledModule is a module read, checked and compiled once per content
// hash. Host.compiled keeps only modules some registration admitted.
type compiledModule struct {
	sha256  string
	code    wazero.CompiledModule
	imports []string // "module.name" of each function import, in order
	// importSigs[i] is the signature imports[i] is declared with.
	importSigs []wasmbin.FuncType
	// otherImports names each imported table, memory or global, which
	// the host never offers: "module.name (a memory)".
	otherImports []string
	hasStart     bool // a WASI command: _start
	// startSection: the module had a start section, which the compiled
	// copy exports as wasmbin.StartExport for the host to run.
	startSection bool
	hasInit      bool   // a WASI reactor: _initialize
	hasCall      bool   // nanovm_call, the pooled entry point
	minPages     uint32 // declared minimum of the module's memory
	// tableBytes is the most an instance can hold in tables and passive
	// element segments: 8 bytes per entry, each table at its maximum
	// (held to ModuleLimits.TableElements), plus what the runtime holds
	// for its segments and globals. Reserve it with the memory ceiling;
	// it is checked against the ceiling at registration.
	tableBytes uint64
	// tables describes each defined table, and the segments and globals
	// counted in tableBytes, for refusals.
	tables []string
	// extism is the hyper-mcp plugin shape of an Extism plugin, "" for
	// any other module (extism.go).
	extism ExtismShape
	// extraBytes is the part of tableBytes for segments and globals.
	extraBytes uint64
	// resettable: the module's whole mutable state is its memory and its
	// mutable globals (wasmbin.Module.Resettable), exported under
	// resetGlobals in the compiled copy.
	resettable   bool
	resetGlobals []string
}

// Per-instance bytes the runtime allocates outside linear memory, counted
// in compiledModule.tableBytes: per data or element segment, per global.
const (
	segmentBytes = 24
	globalBytes  = 96
)

// abiSection is the optional custom section naming the guest ABI version.
const abiSection = "nanovm.abi"

// compile returns the compiled module for wasm, compiling it when no
// admitted registration did before; see load.
func (h *Host) compile(ctx context.Context, wasm []byte) (*compiledModule, error) {
	return h.load(ctx, wasm, nil)
}

// load reads wasm structurally and against the module ceilings, asks
// admit (gate A and what else the caller checks, nil for nothing) before
// anything is compiled, then compiles it under the compile deadline and
// a compile slot. Only an admitted module is kept: a refused one costs
// its structural read and no more, and leaves nothing behind. A module
// compiled before for the same bytes is returned (after admit) at once.
func (h *Host) load(ctx context.Context, wasm []byte, admit func(*compiledModule) error) (*compiledModule, error) {
	sum := sha256Hex(wasm)
	var cm *compiledModule
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		var ok bool
		cm, ok = h.compiled[sum]
		if ok {
			h.mu.Unlock()
			if admit != nil {
				if err := admit(cm); err != nil {
					return nil, err
				}
			}
			return cm, nil
		}
		wait, busy := h.compiling[sum]
		if !busy {
			done := make(chan struct{})
			h.compiling[sum] = done
			h.mu.Unlock()
			defer func() {
				h.mu.Lock()
				delete(h.compiling, sum)
				h.mu.Unlock()
				close(done)
			}()
			break
		}
		h.mu.Unlock()
		select {
		case <-wait: // compiled (look again) or failed (compile it here)
		case <-ctx.Done():
			return nil, fmt.Errorf("compile module %.12s: waiting for its compilation in flight: %w", sum, ctx.Err())
		}
	}

	// Reading and rewriting a module allocates about 20× its size
	// (wasmbin's rationale), so it takes a compile slot too: at most
	// Compilations modules are read or compiled at once, however many
	// uploads arrive together.
	if err := h.takeSlot(ctx, sum); err != nil {
		return nil, err
	}
	cm, code, err := h.inspect(sum, wasm)
	<-h.compileSlots
	if err != nil {
		return nil, err
	}
	if admit != nil {
		if err := admit(cm); err != nil {
			return nil, err
		}
	}
	if cm.code, err = h.compileCode(ctx, sum, code); err != nil {
		return nil, err
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.compiled[sum]; ok { // lost a race: keep the first
		_ = cm.code.Close(ctx)
		return prev, nil
	}
	if h.closed {
		_ = cm.code.Close(ctx)
		return nil, ErrClosed
	}
	h.compiled[sum] = cm
	return cm, nil
}

// check is load without the compilation: the structural pre-check and
// admit, for a module whose compilation may wait for its first call. The
// result holds no compiled code and is not kept.
func (h *Host) check(wasm []byte, admit func(*compiledModule) error) (*compiledModule, error) {
	sum := sha256Hex(wasm)
	h.mu.Lock()
	cm, ok := h.compiled[sum]
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		var err error
		if cm, _, err = h.inspect(sum, wasm); err != nil {
			return nil, err
		}
	}
	if admit != nil {
		if err := admit(cm); err != nil {
			return nil, err
		}
	}
	return cm, nil
}

// inspect is the structural pre-check: the size ceiling, the structural
// read against the other ceilings, the entry points and the ABI version.
// It returns what gate A and the call path need, and the bytes to compile:
// wasm itself, or a copy whose tables' maximums are held to the ceiling.
func (h *Host) inspect(sum string, wasm []byte) (*compiledModule, []byte, error) {
	lim := h.limits
	if int64(len(wasm)) > lim.ModuleBytes {
		return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrModuleLimit, "module is %d bytes, ceiling is %d", len(wasm), lim.ModuleBytes))
	}
	pm, err := wasmbin.Parse(wasm, lim.parseLimits())
	if err != nil {
		kind := ErrInvalidModule
		if errors.Is(err, wasmbin.ErrCeiling) {
			kind = ErrModuleLimit
		}
		return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(kind, "%v", err))
	}
	cm := &compiledModule{sha256: sum}
	importedTables := 0
	for _, im := range pm.Imports {
		name := im.Module + "." + im.Name
		if im.Kind == wasmbin.KindFunc {
			cm.imports = append(cm.imports, name)
			cm.importSigs = append(cm.importSigs, im.Func)
			continue
		}
		if im.Kind == wasmbin.KindTable {
			importedTables++
		}
		cm.otherImports = append(cm.otherImports, fmt.Sprintf("%s (a %s)", name, im.Kind))
	}
	if len(pm.Memories) > 0 {
		cm.minPages = pm.Memories[0].Min
	}
	funcExports := map[string]bool{}
	for _, e := range pm.Exports {
		if strings.HasPrefix(e.Name, wasmbin.ReservedPrefix) {
			return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "export %q: names starting %q are the host's", e.Name, wasmbin.ReservedPrefix))
		}
		if e.Kind != wasmbin.KindFunc {
			continue
		}
		funcExports[e.Name] = true
		switch e.Name {
		case "_start":
			cm.hasStart = true
		case "_initialize":
			cm.hasInit = true
		case "nanovm_call":
			ft, _ := pm.FuncType(e.Index)
			if want := (wasmbin.FuncType{Results: []wasmbin.ValType{wasmbin.I32}}); !ft.Equal(want) {
				return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "nanovm_call must be () -> i32, not %s", ft))
			}
			cm.hasCall = true
		}
	}
	if slices.ContainsFunc(cm.imports, func(s string) bool { return strings.HasPrefix(s, extismEnvModule+".") }) {
		if cm.extism = extismShape(funcExports); cm.extism == "" {
			return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "an Extism plugin (it imports %s) must export describe and call (hyper-mcp v1) or list_tools and call_tool (v2)", extismEnvModule))
		}
		for _, e := range pm.Exports {
			if e.Kind != wasmbin.KindFunc || (e.Name != cm.extism.listExport() && e.Name != cm.extism.callExport()) {
				continue
			}
			ft, _ := pm.FuncType(e.Index)
			if want := (wasmbin.FuncType{Results: []wasmbin.ValType{wasmbin.I32}}); !ft.Equal(want) {
				return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "plugin export %s must be () -> i32, not %s", e.Name, ft))
			}
		}
	}
	if !cm.hasStart && !cm.hasCall && cm.extism == "" {
		return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "exports neither _start nor nanovm_call"))
	}
	for _, s := range pm.Customs {
		if s.Name == abiSection && string(s.Data) != "1" {
			return nil, nil, fmt.Errorf("read module %.12s: %w", sum, detail(ErrInvalidModule, "guest ABI %q not supported (this host speaks 1)", s.Data))
		}
	}
	// What runs is a copy that checks its own stop flag at every loop
	// iteration and wherever a call tree or cycle needs it, and whose
	// tables are held to the ceiling (see Instrument).
	code, info := pm.Instrument(wasm, lim.TableElements)
	cm.startSection = info.Start
	cm.resettable, cm.resetGlobals = pm.Resettable() == "", info.Globals
	maxes := info.TableMax
	for i, t := range pm.Tables {
		cm.tableBytes += uint64(maxes[i]) * 8
		declared := "declares no maximum"
		if t.HasMax {
			declared = fmt.Sprintf("declares maximum %d", t.Max)
		}
		cm.tables = append(cm.tables, fmt.Sprintf("table %d: %d entries at start, up to %d (%s, ceiling %d)", i+importedTables, t.Min, maxes[i], declared, lim.TableElements))
	}
	if pm.PassiveElemEntries > 0 {
		cm.tableBytes += pm.PassiveElemEntries * 8
		cm.tables = append(cm.tables, fmt.Sprintf("%d passive element entries", pm.PassiveElemEntries))
	}
	// What the runtime allocates per instance, outside linear memory, for
	// the declared segments and globals (wazero v1.12, measured: a slice
	// header per data and element segment, a global instance per global).
	for _, c := range []struct {
		n    uint64
		each uint64
		what string
	}{
		{uint64(pm.DataSegments), segmentBytes, "data segments"},
		{uint64(pm.ElemSegments), segmentBytes, "element segments"},
		{uint64(len(pm.Globals)), globalBytes, "globals"},
	} {
		if c.n > 0 {
			cm.tableBytes += c.n * c.each
			cm.extraBytes += c.n * c.each
			cm.tables = append(cm.tables, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return cm, code, nil
}

// compileWorkers is the goroutines one compilation uses. wazero v1.12
// checks the context between functions only when it compiles with more
// than one worker (its single-goroutine path never looks), so two it is:
// a deadline or a cancel then stops a compilation after the functions in
// flight, which the per-function ceilings keep short.
const compileWorkers = 2

// compileCode compiles wasm with a compile slot, under the compile
// deadline and the caller's context: a cancel stops it between functions
// (the ceilings keep one function's compile short).
func (h *Host) compileCode(ctx context.Context, sum string, wasm []byte) (wazero.CompiledModule, error) {
	if err := h.takeSlot(ctx, sum); err != nil {
		return nil, err
	}
	defer func() { <-h.compileSlots }()
	cctx, cancel := context.WithTimeout(ctx, h.limits.CompileTimeout)
	defer cancel()
	h.stats.compilations.Add(1)
	code, err := h.rt.CompileModule(experimental.WithCompilationWorkers(cctx, compileWorkers), wasm)
	if err == nil && cctx.Err() != nil { // finished as the deadline passed
		_ = code.Close(context.Background())
		err = cctx.Err()
	}
	switch {
	case err == nil:
		return code, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("compile module %.12s: %w", sum, ctx.Err())
	case cctx.Err() != nil:
		return nil, fmt.Errorf("compile module %.12s: %w", sum, detail(ErrTimeout, "compilation timed out after %s", h.limits.CompileTimeout))
	}
	return nil, fmt.Errorf("compile module %.12s: %w", sum, detail(ErrInvalidModule, "%v", err))
}

// takeSlot waits for one of the compile slots, or for ctx to end; the
// caller gives it back with <-h.compileSlots.
func (h *Host) takeSlot(ctx context.Context, sum string) error {
	select {
	case h.compileSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("compile module %.12s: waiting for a compile slot: %w", sum, ctx.Err())
	}
}

// readHostSigs reads the signature of every host function a guest may
// import, from the same definitions link instantiates: wazero's WASI
// functions and the nanovm functions exportNanovm builds.
func (h *Host) readHostSigs(ctx context.Context) (map[string]wasmbin.FuncType, error) {
	sigs := map[string]wasmbin.FuncType{}
	add := func(module string, defs map[string]api.FunctionDefinition) {
		for name, def := range defs {
			sigs[module+"."+name] = funcType(def)
		}
	}
	add(wasiModule, h.wasiFuncs)
	all := capSet{}
	for _, c := range Capabilities() {
		all[c] = true
	}
	for _, om := range ownModules {
		c, err := om.build(h, "nanovm-link/signatures/"+om.what, all).Compile(ctx)
		if err != nil {
			return nil, fmt.Errorf("compile %s host module: %w", om.what, err)
		}
		add(om.module, c.ExportedFunctions())
		_ = c.Close(ctx)
	}
	return sigs, nil
}

func funcType(def api.FunctionDefinition) wasmbin.FuncType {
	conv := func(ts []api.ValueType) []wasmbin.ValType {
		out := make([]wasmbin.ValType, len(ts))
		for i, t := range ts {
			out[i] = wasmbin.ValType(t)
		}
		return out
	}
	return wasmbin.FuncType{Params: conv(def.ParamTypes()), Results: conv(def.ResultTypes())}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
