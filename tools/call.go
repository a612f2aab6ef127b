package tools

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nanovm/nano-vm-mcp/kernel/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/kernel/jsonread"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Tool is one resolved, compiled tool version with its effective
// capabilities, ready to call. Get one from Registry.Resolve.
type Tool struct {
	// Record is the registered version this tool runs.
	Record store.ToolRecord
	// Manifest is Record's decoded manifest.
	Manifest Manifest
	// Granted is the effective capability set (gate C's answer), sorted.
	Granted []Capability
	// Source is who registered the version.
	Source store.ToolSource
	// Authority maps each capability in Granted but wasi:stdio to the
	// authority that granted it (AuthorityManifest, AuthorityPolicy, ...).
	Authority map[string]string
	// secretGrant is the secret ids the policy lets this tool resolve,
	// AnySecret for any, sorted; nil means none.
	secretGrant []string

	host   *Host
	mod    *compiledModule
	caps   capSet
	link   *linkSet
	input  *jsonschema.Schema
	output *jsonschema.Schema
	base   wazero.ModuleConfig
	pool   *pool
	lim    limits // the manifest's limits under the server's ceilings
	// inputQuick and outputQuick, when set, accept most values without
	// the full validator (quickSchema).
	inputQuick  *quickSchema
	outputQuick *quickSchema
	cmd         *command // the manifest's command section; nil for none
}

// CallRequest is one call of a tool.
type CallRequest struct {
	// ExecutionID names the run, for secret resolution and logs.
	ExecutionID string
	// Args are the tool's arguments, checked against its input schema and
	// given to the guest as JSON on stdin. nil means {}.
	Args map[string]any
	// Timeout overrides the manifest's timeout when positive; it is capped
	// by the server's ceiling (Ceilings.CallTimeout).
	Timeout time.Duration
	// State is the part of the run's state this tool may see, already
	// projected by the caller (the TOOL projection); the guest reads it as
	// JSON through nanovm.state_get, and only if it holds nanovm:state.
	// nil means {}. Call never projects: whatever is here is visible.
	State map[string]any
}

// CallResult is what a call produced.
type CallResult struct {
	// Output is the decoded JSON result, secrets scrubbed back to refs.
	Output any
	// Log is the guest's stderr and nanovm.log lines, capped, scrubbed.
	Log string
	// ModuleSHA256 and ManifestSHA256 name the exact code that ran.
	ModuleSHA256, ManifestSHA256 string
	// Source and Grants say who registered that code and who granted each
	// capability it held (Tool.Source, Tool.Authority).
	Source store.ToolSource
	Grants map[string]string
	// Provenance is the version's record of where the module came from
	// (an OCI artifact and its signer); nil for a file or an upload.
	Provenance *store.ToolProvenance
}

// callState is what one call's host functions, output writers and memory
// allocator share. It travels in the context.
type callState struct {
	tool        *Tool
	executionID string
	state       []byte   // JSON of CallRequest.State, only with CapState
	argv        []string // this call's argv when a command templates it
	stdout      capWriter
	stderr      capWriter
	cancel      context.CancelFunc
	ctx         callCtx // the call's context: carries this state

	// argRefs are the vault refs that appear in the call's arguments: the
	// only ones nanovm.secret_get may resolve (secretAccess).
	argRefs map[string]bool

	mu       sync.Mutex
	secrets  map[string]string // resolved value -> ref, for scrubbing
	failure  error             // the first limit breached, if any
	memLimit uint64
	// resolved is set once the guest resolved any secret: a pooled
	// instance is then discarded after the call, never reused.
	resolved bool
	// attempts are refused secret_get calls, for the call's log; kept
	// apart from stderr so that a guest cannot crowd them out.
	attempts []string
	dropped  int // attempts past maxAttempts
}

type callKey struct{}

// callCtx is a call's context with its state as the value for callKey. It
// lives inside callState, which saves the allocation of a WithValue
// context per call; it is never mutated once the call starts, as wazero
// may still read it from another goroutine briefly after the call.
type callCtx struct {
	context.Context
	st *callState
}

// Value implements context.Context.
func (c *callCtx) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

func stateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callKey{}).(*callState)
	return s
}

// fail records the first fatal limit breach and kills the instance by
// cancelling the call's context (the runtime closes modules on it). The
// breach is read from failure, not from the context's cause, so the
// context needs no cause of its own.
func (s *callState) fail(err error) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *callState) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// capWriter keeps up to max bytes. Past that, a strict writer fails the
// call (stdout: a truncated result would be wrong); a lenient one keeps
// the head and drops the rest (stderr: the log is best effort).
type capWriter struct {
	buf       []byte
	max       int
	strict    bool
	truncated bool
	state     *callState
	mu        sync.Mutex
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.buf); len(p) > room {
		w.buf = append(w.buf, p[:max(room, 0)]...)
		if w.strict {
			w.state.fail(detail(ErrOutputLimit, "stdout exceeded %d bytes", w.max))
			return max(room, 0), io.ErrShortWrite
		}
		w.truncated = true
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *capWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf
}

// outPool recycles stdout buffers: every call has one, and its bytes are
// dead once decoded.
var outPool sync.Pool // *[]byte, len 0

// outPoolMax bounds the stdout buffers outPool keeps.
const outPoolMax = 64 << 10

func getOutBuf() *[]byte {
	if p, ok := outPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 512)
	return &b
}

// putOutBuf keeps b (which grew from *p) in p for the next call.
func putOutBuf(p *[]byte, b []byte) {
	if cap(b) > outPoolMax {
		return
	}
	*p = b[:0]
	outPool.Put(p)
}

// limitedMemory backs a guest's linear memory and refuses to grow past the
// tool's ceiling, failing the call with a clear error rather than leaving
// the guest to turn a failed memory.grow into an obscure trap. Every byte
// it holds is charged to the host's memory budget first, so the memories
// of all live instances together stay within Ceilings.MemoryBudgetMiB.
//
// A small memory (up to memPoolMax) lives on the Go heap and is recycled
// through memPool. Past that, the memory moves once into an anonymous
// mapping of the whole ceiling, reserved but not touched (mapRegion): it
// then grows in place, without the copies and garbage of doubling, and
// Free unmaps it, so its pages leave the process at once instead of
// waiting for the collector.
//
// Reallocate runs on the call's goroutine; Free runs there too (wazero
// defers closing a cancelled module's resources to the calling goroutine)
// except while the host closes, when it may run under a live guest.
type limitedMemory struct {
	buf     []byte
	region  []byte // the mapping buf lives in, once it outgrew the heap
	charged uint64 // bytes reserved in the host's budget
	limit   uint64
	// held is the part of the call's memory ceiling the module's tables,
	// segments and globals take (compiledModule.tableBytes), for messages:
	// the ceiling a manifest names is limit+held.
	held  uint64
	onHit func(error)
	host  *Host
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		if m.held > 0 {
			m.onHit(detail(ErrMemoryLimit, "memory limit %s exceeded (%s of it held for the module's tables, segments and globals)", mib(m.limit+m.held), mib(m.held)))
		} else {
			m.onHit(detail(ErrMemoryLimit, "memory limit %s exceeded", mib(m.limit)))
		}
		return m.refused(size)
	}
	if m.region != nil {
		if !m.charge(size) {
			return m.refused(size)
		}
		m.buf = m.region[:size]
		return m.buf
	}
	if uint64(cap(m.buf)) >= size {
		m.buf = m.buf[:size]
		return m.buf
	}
	if capacity := min(max(size, 2*uint64(cap(m.buf))), m.limit); capacity <= memPoolMax {
		if !m.charge(capacity) {
			return m.refused(size)
		}
		nb := m.alloc(size, capacity)
		copy(nb, m.buf)
		m.recycle()
		m.buf = nb
		return nb
	}
	if !m.charge(size) {
		return m.refused(size)
	}
	region, err := mapRegion(m.limit)
	if err != nil {
		m.onHit(detail(ErrMemoryLimit, "reserve %s of memory: %v", mib(m.limit), err))
		return m.refused(size)
	}
	copy(region, m.buf)
	m.recycle()
	m.region, m.buf = region, region[:size]
	return m.buf
}

// charge makes the budget hold total bytes for m, reporting false (and
// failing the call) when the budget has no room for the difference.
func (m *limitedMemory) charge(total uint64) bool {
	if total <= m.charged {
		return true
	}
	if !m.host.reserve(total - m.charged) {
		m.onHit(m.host.budget.err(total - m.charged))
		return false
	}
	m.charged = total
	return true
}

// refused answers a growth that was refused (the call already failed):
// nil, for a memory.grow; for the initial allocation, where nil would make
// the runtime panic, a buffer of the size asked, mapped untouched and not
// charged, which the cancelled context keeps the guest from using.
func (m *limitedMemory) refused(size uint64) []byte {
	if m.buf != nil || m.region != nil {
		return nil
	}
	if size > memPoolMax {
		if region, err := mapRegion(size); err == nil {
			m.region, m.buf = region, region
			return m.buf
		}
	}
	m.buf = make([]byte, size)
	return m.buf
}

// recycle hands m's heap buffer back to memPool.
func (m *limitedMemory) recycle() {
	if c := cap(m.buf); c > 0 && c <= memPoolMax && m.region == nil {
		// b is declared here so that it escapes (for Put) only when used.
		b := m.buf[:c]
		m.buf = nil
		clear(b)
		memPool.Put(&b)
	}
}

// Free releases m's memory and its charge; a second Free does nothing.
// Small heap buffers go back to memPool, as most tools fit in a page or
// two and reusing their memory spares the collector ~64 KiB per call.
func (m *limitedMemory) Free() {
	// While the host closes, the runtime frees memories from another
	// goroutine, possibly under a still-running guest: never reuse or
	// unmap those (a mapping stays until the process exits).
	live := m.host != nil && !m.host.closing.Load()
	switch {
	case m.region != nil:
		if live {
			unmapRegion(m.region)
		}
		m.region = nil
	case live:
		m.recycle()
	}
	m.buf = nil
	if m.host != nil {
		m.host.budget.release(m.charged)
	}
	m.charged = 0
}

// memPoolMax bounds the buffers memPool keeps.
const memPoolMax = 256 << 10

var memPool sync.Pool // *[]byte, zeroed, cap <= memPoolMax

// alloc returns a zeroed buffer of len size, from memPool when one fits.
func (m *limitedMemory) alloc(size, capacity uint64) []byte {
	if capacity <= memPoolMax {
		if p, ok := memPool.Get().(*[]byte); ok {
			if uint64(cap(*p)) >= capacity {
				return (*p)[:size]
			}
			memPool.Put(p)
		}
	}
	return make([]byte, size, capacity)
}

// deterministicRand is the random source of a tool without wasi:random: a
// fixed-seed ChaCha8 stream, as repeatable as wazero's default and far
// cheaper to create than its math/rand source.
func deterministicRand() io.Reader {
	return mrand.NewChaCha8([32]byte{'n', 'a', 'n', 'o', 'v', 'm'})
}

func mib(b uint64) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}

// prepare builds what every call of t reuses: linked host modules, the
// module config without per-call streams, and the compiled schemas.
func (h *Host) prepare(ctx context.Context, rec store.ToolRecord, m Manifest, cm *compiledModule, granted []string) (*Tool, error) {
	t := &Tool{Record: rec, Manifest: m, host: h, mod: cm, caps: newCapSet(granted)}
	for c := range t.caps {
		t.Granted = append(t.Granted, c)
	}
	sortCaps(t.Granted)
	var err error
	if t.link, err = h.link(ctx, t.caps); err != nil {
		return nil, err
	}
	if len(m.InputSchema) > 0 {
		if t.input, err = compileSchema(m.InputSchema); err != nil {
			return nil, fmt.Errorf("tool %q: input_schema: %w", m.Name, err)
		}
		t.inputQuick = compileQuick(m.InputSchema)
	}
	if len(m.OutputSchema) > 0 {
		if t.output, err = compileSchema(m.OutputSchema); err != nil {
			return nil, fmt.Errorf("tool %q: output_schema: %w", m.Name, err)
		}
		t.outputQuick = compileQuick(m.OutputSchema)
	}
	cfg := wazero.NewModuleConfig().WithName("").WithArgs(m.Name)
	if t.cmd = newCommand(m.Name, m.Command); t.cmd != nil && t.cmd.fixed {
		cfg = cfg.WithArgs(t.cmd.argv...)
	}
	for k, v := range m.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if t.caps[CapClock] {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if t.caps[CapRandom] {
		cfg = cfg.WithRandSource(rand.Reader)
	}
	if t.caps[CapFS] && len(m.Mounts) > 0 {
		// Each mount is served through an os.Root (fsroot.go), never
		// wazero's path-based DirFS, which follows symlinks out of it.
		fsc := wazero.NewFSConfig()
		for _, mt := range m.Mounts {
			mfs, err := h.openMount(mt)
			if err != nil {
				return nil, fmt.Errorf("tool %q: %w", m.Name, err)
			}
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(mfs, mt.GuestPath)
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	switch {
	case cm.extism != "": // a plugin's entry points are its exports
		cfg = cfg.WithStartFunctions()
		if cm.hasInit {
			cfg = cfg.WithStartFunctions("_initialize")
		}
	case cm.hasStart:
		cfg = cfg.WithStartFunctions("_start")
	case cm.hasInit:
		cfg = cfg.WithStartFunctions("_initialize")
	default:
		cfg = cfg.WithStartFunctions()
	}
	t.base = cfg
	t.lim = h.opts.Ceilings.effective(&m)
	if len(t.lim.clamped) > 0 {
		h.opts.Logger.Warn("tool limits above the server's ceilings: clamped", "tool", m.Name, "module", rec.ModuleSHA256, "fields", t.lim.clamped)
	}
	if m.Isolation == IsolationPool {
		if !cm.hasCall {
			return nil, fmt.Errorf("tool %q: isolation %q needs the module to export nanovm_call", m.Name, IsolationPool)
		}
		t.pool = newPool(t, t.lim.poolSize)
	}
	return t, nil
}

// Call runs one call of t: a fresh instance, or a warm one from its pool.
// On a tool failure the returned result still carries the log.
func (t *Tool) Call(ctx context.Context, req CallRequest) (CallResult, error) {
	if t.mod.extism != "" {
		return t.callPlugin(ctx, req) // extism.go
	}
	name := t.Manifest.Name
	res := CallResult{ModuleSHA256: t.Record.ModuleSHA256, ManifestSHA256: t.Record.ManifestSHA256, Source: t.Source, Grants: t.Authority, Provenance: t.Record.Provenance}
	args := req.Args
	if args == nil {
		args = map[string]any{}
	}
	stdin, err := json.Marshal(args)
	if err != nil {
		return res, fmt.Errorf("tool %q: encode args: %w: %w", name, ErrInvalidArgs, err)
	}
	if t.input != nil && (t.inputQuick == nil || !t.inputQuick.accepts(args)) {
		if err := validateValue(t.input, args, stdin); err != nil {
			return res, fmt.Errorf("tool %q: %w: %w", name, ErrInvalidArgs, clipErr(err))
		}
	}
	var argv []string
	if t.cmd != nil {
		if stdin, argv, err = t.cmd.input(args, stdin); err != nil {
			return res, fmt.Errorf("tool %q: %w", name, err)
		}
	}
	var state []byte
	if t.caps[CapState] {
		if state, err = encodeState(req.State); err != nil {
			return res, fmt.Errorf("tool %q: encode state: %w: %w", name, ErrInvalidArgs, err)
		}
	}
	timeout := t.lim.timeout
	if req.Timeout > 0 {
		timeout = min(req.Timeout, t.host.opts.Ceilings.CallTimeout)
	}

	// One context per call: the timeout, cancelled early by fail.
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The tables' bound counts against the same ceiling (admit checked that
	// both fit), so linear memory may grow to what is left of it.
	st := &callState{tool: t, executionID: req.ExecutionID, state: state, argv: argv, cancel: cancel, memLimit: t.lim.memory - min(t.mod.tableBytes, t.lim.memory)}
	outBuf := getOutBuf()
	st.stdout = capWriter{buf: *outBuf, max: t.lim.stdout, strict: true, state: st}
	st.stderr = capWriter{max: t.lim.stderr, state: st}
	if t.caps[CapSecrets] {
		st.argRefs = argRefs(args)
	}
	st.ctx = callCtx{Context: tctx, st: st}
	cctx := context.Context(&st.ctx)

	var runErr error
	if t.pool != nil {
		runErr = t.pool.call(cctx, st, stdin)
	} else {
		runErr = t.runFresh(cctx, st, stdin)
	}
	stdout, log := st.stdout.bytes(), st.stderr.bytes()
	// The instance is closed or detached from st by now: nothing writes
	// to stdout any more, and decodeOutput copies what it keeps.
	defer putOutBuf(outBuf, stdout)
	stdout, log = st.scrub(stdout), st.scrub(log)
	res.Log = string(log)
	if st.stderr.truncated {
		res.Log += "\n[log truncated]"
	}
	res.Log = st.withAttempts(res.Log)
	code, runErr := t.cmd.exit(runErr)
	if err := t.classify(ctx, tctx, st, runErr, timeout, log); err != nil {
		return res, err
	}
	out, err := t.cmd.decode(stdout, code)
	if err != nil {
		return res, fmt.Errorf("tool %q: %w", name, err)
	}
	if obj, ok := out.(map[string]any); ok && t.cmd.jsonErrors() {
		if msg, ok := obj["error"].(string); ok {
			return res, fmt.Errorf("tool %q: %w", name, detail(ErrToolFailed, "%s", jsonlimit.Excerpt(msg, maxErrorExcerpt)))
		}
	}
	if t.output != nil && !isPending(out) && (t.outputQuick == nil || !t.outputQuick.accepts(out)) {
		if err := validateValue(t.output, out, stdout); err != nil {
			return res, fmt.Errorf("tool %q: %w: %w", name, ErrInvalidOutput, clipErr(err))
		}
	}
	res.Output = out
	return res, nil
}

// encodeState is the JSON nanovm.state_get hands out: nil is {}.
func encodeState(state map[string]any) ([]byte, error) {
	if state == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(state)
}

// runFresh instantiates a new instance, runs it to completion and closes it.
func (t *Tool) runFresh(ctx context.Context, st *callState, stdin []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: host panic: %v", ErrTrap, r)
		}
	}()
	mem := &limitedMemory{limit: st.memLimit, held: t.lim.memory - st.memLimit, onHit: st.fail, host: t.host}
	// Runs last, once the instance is closed or failed to start: wazero
	// leaves the memory of a module whose data did not fit unfreed.
	defer mem.Free()
	if tb := t.mod.tableBytes; tb > 0 {
		if !t.host.reserve(tb) {
			st.fail(t.host.budget.err(tb))
			return st.failed()
		}
		defer t.host.budget.release(tb)
	}
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return mem }))
	ctx = experimental.WithImportResolver(ctx, t.link.resolver)
	cfg := t.base.WithStdin(bytes.NewReader(stdin)).WithStdout(&st.stdout).WithStderr(&st.stderr)
	if st.argv != nil {
		cfg = cfg.WithArgs(st.argv...)
	}
	if !t.caps[CapRandom] {
		cfg = cfg.WithRandSource(deterministicRand())
	}
	mod, err := t.host.rt.InstantiateModule(ctx, t.mod.code, cfg)
	if err != nil {
		return err
	}
	defer mod.Close(context.Background())
	if t.mod.hasStart {
		return nil
	}
	// A reactor: _initialize ran as the start function; now the call.
	ret, err := mod.ExportedFunction("nanovm_call").Call(ctx)
	if err != nil {
		return err
	}
	if code := uint32(ret[0]); code != 0 {
		return sys.NewExitError(code)
	}
	return nil
}

// classify turns how a run ended into the call's error, most specific
// cause first: a breached limit, the timeout, the caller giving up, an
// exit code, a trap.
func (t *Tool) classify(parent, tctx context.Context, st *callState, err error, timeout time.Duration, log []byte) error {
	name := t.Manifest.Name
	if f := st.failed(); f != nil {
		return fmt.Errorf("tool %q: %w", name, f)
	}
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return fmt.Errorf("tool %q: %w", name, parent.Err())
	}
	if errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("tool %q: %w after %s", name, ErrTimeout, timeout)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		if ferr := t.cmd.failed(name, exit.ExitCode(), log); ferr != nil {
			return ferr
		}
		e := fmt.Errorf("tool %q: %w", name, &ExitError{Code: exit.ExitCode()})
		if line := lastLine(log); line != "" {
			e = fmt.Errorf("%w: %s", e, line)
		}
		return e
	}
	msg := err.Error()
	if strings.Contains(msg, "is not exported in module") || strings.Contains(msg, "import func[") || strings.Contains(msg, "module[nanovm-link/none]") {
		// Gate B refused the link; say which imports and why, in gate A's
		// words, with the runtime's own message as the fallback.
		if gerr := checkImports(t.mod.imports, t.caps); gerr != nil {
			return fmt.Errorf("tool %q: instantiate: %w", name, gerr)
		}
		return fmt.Errorf("tool %q: instantiate: %w", name, detail(ErrImportNotGranted, "%s", firstLine(msg)))
	}
	if errors.Is(err, ErrTrap) {
		return fmt.Errorf("tool %q: %w", name, err)
	}
	return fmt.Errorf("tool %q: %w", name, detail(ErrTrap, "trapped: %s", trapReason(msg)))
}

// trapReason keeps the "wasm error: ..." line of a runtime error, dropping
// the stack trace and the wrapper naming the start function.
func trapReason(msg string) string {
	line := firstLine(msg)
	if i := strings.Index(line, "wasm error: "); i >= 0 {
		return line[i+len("wasm error: "):]
	}
	return line
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return jsonlimit.Excerpt(s, 200)
}

// maxErrorExcerpt bounds the guest or client data one tool error quotes:
// a guest's {"error": ...} message, a schema validator's report.
const maxErrorExcerpt = 2000

// clipErr keeps err (for errors.Is and errors.As) with its text clipped to
// maxErrorExcerpt bytes: a schema failure can quote the whole value.
func clipErr(err error) error {
	if msg := err.Error(); len(msg) > maxErrorExcerpt {
		return &clippedError{err: err, msg: jsonlimit.Excerpt(msg, maxErrorExcerpt)}
	}
	return err
}

// clippedError is an error whose text is an excerpt of its cause's.
type clippedError struct {
	err error
	msg string
}

func (e *clippedError) Error() string { return e.msg }
func (e *clippedError) Unwrap() error { return e.err }

// decodeOutput reads stdout as exactly one JSON value; empty means null.
// Output nested deeper than jsonlimit.MaxDepth, or holding a number longer
// than jsonlimit.MaxNumberLen or outside the float64 range, is refused
// here, before it can reach a state, a record or an envelope. The error
// says where the output went wrong and quotes an excerpt there (see
// outputExcerpt), so a tool that printed garbage shows it.
func decodeOutput(stdout []byte) (any, error) {
	if err := jsonlimit.Check(stdout); err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrInvalidOutput, err, outputExcerpt(stdout, -1))
	}
	// A guest's output is usually JSON as an encoder writes it, which
	// jsonread decodes as encoding/json would without reflection; anything
	// it does not take goes to encoding/json.
	r := jsonread.New(stdout)
	if v, ok := r.Value(); ok && r.AtEnd() {
		return v, nil
	}
	var v any
	if err := json.Unmarshal(stdout, &v); err == nil {
		return v, nil
	}
	// Slow path, for the empty case and for an error that says what is
	// wrong rather than where json.Unmarshal stopped.
	if len(bytes.TrimSpace(stdout)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	if err := dec.Decode(&v); err != nil {
		at := -1
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			at = int(syn.Offset) - 1 // Offset is just past the byte that broke
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			at = len(stdout)
		}
		return nil, fmt.Errorf("%w: stdout is not JSON: %s; %s", ErrInvalidOutput,
			jsonlimit.Excerpt(err.Error(), 0), outputExcerpt(stdout, at))
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: stdout holds more than one JSON value: the first ends at byte %d; %s", ErrInvalidOutput,
			end, outputExcerpt(stdout, end))
	}
	return nil, fmt.Errorf("%w: stdout is not JSON; %s", ErrInvalidOutput, outputExcerpt(stdout, -1))
}

// outputExcerptBytes is how much of a tool's stdout an error quotes at
// its start and again where decoding stopped.
const outputExcerptBytes = 160

// outputExcerpt describes a tool's stdout for an error: its size, an
// excerpt of its start and, when decoding stopped at byte at (-1 when not
// known), of what follows there, both quoted so that NUL and other
// non-text bytes show as escapes. Such bytes get a hint: they usually mean
// the module overwrote its own memory, in C most often a stack overflow
// into static data.
func outputExcerpt(stdout []byte, at int) string {
	var b strings.Builder
	start := clipBytes(stdout, 0)
	b.WriteString("stdout starts " + start)
	if strings.HasSuffix(start, "…") {
		b.WriteString("(" + groupDigits(len(stdout)) + " bytes in all)")
	}
	if at > outputExcerptBytes/2 && at < len(stdout) {
		fmt.Fprintf(&b, ", and at byte %s reads %s", groupDigits(at), clipBytes(stdout, at))
	}
	if bin := firstNonText(stdout); bin >= 0 {
		fmt.Fprintf(&b, "; byte %s is not text (0x%02x): garbage in stdout usually means the tool overwrote its own memory (in C, often a stack overflow into static data or an overrun buffer)", groupDigits(bin), stdout[bin])
	} else {
		b.WriteString("; a tool writes exactly one JSON value to stdout (logs go to stderr or nanovm.log)")
	}
	return b.String()
}

// clipBytes quotes stdout from byte from: at most outputExcerptBytes of
// it, fewer when escapes (of binary garbage) would make the quote longer
// than 1.5 times that, with "…" after the quote when it goes on.
func clipBytes(stdout []byte, from int) string {
	s := stdout[from:]
	n := min(len(s), outputExcerptBytes)
	for {
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		q := strconv.Quote(string(s[:n]))
		if len(q) <= outputExcerptBytes*3/2 || n <= 8 {
			if n < len(s) {
				q += "…"
			}
			return q
		}
		n /= 2
	}
}

// groupDigits writes n with thousands separators, as jsonlimit.Excerpt
// does: 412,345.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// firstNonText returns the offset of the first byte of stdout that no
// text holds (a control byte other than tab, newline and carriage return,
// or invalid UTF-8), or -1.
func firstNonText(stdout []byte) int {
	for i := 0; i < len(stdout); {
		c := stdout[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(stdout[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

func isPending(v any) bool {
	if s, ok := v.(string); ok {
		return s == "PENDING"
	}
	if m, ok := v.(map[string]any); ok {
		return m["status"] == "PENDING"
	}
	return false
}

// validateValue checks v against s. v is validated as it is when it holds
// only the types encoding/json decodes to, sparing a decode of doc; any
// other Go value is checked through doc, its JSON encoding.
func validateValue(s *jsonschema.Schema, v any, doc []byte) error {
	if plainJSON(v, 0) {
		return s.Validate(v)
	}
	return validateJSON(s, doc)
}

func validateJSON(s *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// plainJSON reports whether v is made only of the types json.Unmarshal
// produces into an any (plus json.Number), so the validator can read it
// directly. Deep values fall back to the encoded form.
func plainJSON(v any, depth int) bool {
	if depth > 64 {
		return false
	}
	switch v := v.(type) {
	case nil, bool, string, float64, json.Number:
		return true
	case map[string]any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

// scrub replaces every secret value this call resolved with its ref, both
// raw and JSON-escaped, so neither the result nor the log leaks it.
//
// Longer values go first and the text is scanned once: when one secret
// contains another, the longer is replaced whole rather than leaving the
// rest of it around the shorter one's ref, and a ref just written is never
// scanned again (a short secret may occur inside a ref).
func (s *callState) scrub(b []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.secrets) == 0 || len(b) == 0 {
		return b
	}
	type pair struct{ val, ref string }
	pairs := make([]pair, 0, 2*len(s.secrets))
	for val, ref := range s.secrets {
		pairs = append(pairs, pair{val, ref})
		if esc, err := json.Marshal(val); err == nil {
			if esc := string(esc[1 : len(esc)-1]); esc != val {
				pairs = append(pairs, pair{esc, ref})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(len(b.val), len(a.val)); c != 0 {
			return c
		}
		return strings.Compare(a.val, b.val)
	})
	oldnew := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		oldnew = append(oldnew, p.val, p.ref)
	}
	return []byte(strings.NewReplacer(oldnew...).Replace(string(b)))
}

// ActsOutside reports whether a call may change anything outside its
// sandbox: the tool was granted the network (nanovm:http) or the host's
// files (wasi:fs). A tool without either can only compute its answer, so
// running it again (after a crash, say) has no effect but its output.
func (t *Tool) ActsOutside() bool {
	return slices.Contains(t.Granted, CapHTTP) || slices.Contains(t.Granted, CapFS)
}
