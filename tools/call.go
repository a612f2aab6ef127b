package tools

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Tool is one resolved, compiled tool version with its effective
// capabilities, ready to call. Get one from Registry.Resolve.
type Tool struct {
	// Record is the registered version this tool runs.
	Record toolrecord.Record
	// Manifest is Record's decoded manifest.
	Manifest Manifest
	// Granted is the effective capability set (gate C's answer), sorted.
	Granted []Capability
	// Source is who registered the version.
	Source toolrecord.Source
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
	// starts are the start functions a fresh instance runs (_start or
	// _initialize), after the module's start section.
	starts []string
	pool   *pool
	lim    limits // the manifest's limits under the server's ceilings
	// inputQuick and outputQuick, when set, accept most values without
	// the full validator (quickSchema).
	inputQuick  *quickSchema
	outputQuick *quickSchema
	cmd         *command // the manifest's command section; nil for none
	// slots are the idle fresh-call slots (freshSlot), *freshSlot.
	slots sync.Pool
	// reset: fresh calls may reuse a reset instance (reset.go), kept
	// idle in kept, reset to img.
	reset  bool
	img    atomic.Pointer[resetImage]
	keptMu sync.Mutex
	kept   []*freshSlot
}

// CallRequest is one call of a tool.
type CallRequest struct {
	// TraceID names the run, for secret resolution and logs.
	TraceID string
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
	Source toolrecord.Source
	Grants map[string]string
	// Provenance is the version's record of where the module came from
	// (an OCI artifact and its signer); nil for a file or an upload.
	Provenance *toolrecord.Provenance
	// MemoryBytes is the most linear memory the guest instance held, in
	// bytes (for a pooled instance, over its life so far); 0 when no
	// instance ran.
	MemoryBytes uint64
}

// deterministicRand is the random source of a tool without wasi:random: a
// fixed-seed ChaCha8 stream, as repeatable as wazero's default and far
// cheaper to create than its math/rand source.
func deterministicRand() io.Reader {
	return mrand.NewChaCha8(randSeed)
}

// prepare builds what every call of t reuses: linked host modules, the
// module config without per-call streams, and the compiled schemas.
func (h *Host) prepare(ctx context.Context, rec toolrecord.Record, m Manifest, cm *compiledModule, granted []string) (*Tool, error) {
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
	// No start function runs inside the runtime's instantiation: the
	// host runs them once the instance's stop flag is armed (instantiate,
	// which relies on every call's config deriving from t.base).
	switch {
	case cm.extism != "": // a plugin's entry points are its exports
		if cm.hasInit {
			t.starts = []string{"_initialize"}
		}
	case cm.hasStart:
		t.starts = []string{"_start"}
	case cm.hasInit:
		t.starts = []string{"_initialize"}
	}
	t.base = cfg.WithStartFunctions()
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
	if t.reset = t.resettable(); t.reset {
		h.poolsMu.Lock()
		h.keepers = append(h.keepers, t)
		h.poolsMu.Unlock()
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
	// The arguments' JSON is dead once the call ends (the instance read it,
	// the validator copies what it quotes): its buffer is recycled.
	argBuf := getOutBuf()
	stdin, err := appendJSON(*argBuf, args)
	defer putOutBuf(argBuf, stdin)
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

	// One context per call: the timeout, cancelled early by fail; its
	// object is recycled (deadlineCtx).
	dl := newDeadline(ctx, timeout)
	defer releaseDeadline(dl)
	tctx := context.Context(dl)
	// The tables' bound counts against the same ceiling (admit checked that
	// both fit), so linear memory may grow to what is left of it.
	st := &callState{tool: t, traceID: req.TraceID, state: state, argv: argv, dl: dl, memLimit: t.lim.memory - min(t.mod.tableBytes, t.lim.memory)}
	defer st.detach() // before the release: no late fail cancels a later call
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
	res.MemoryBytes = st.memBytes
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
	if t.output != nil && !kernel.IsPending(out) && (t.outputQuick == nil || !t.outputQuick.accepts(out)) {
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
	return marshalJSON(state)
}

// runFresh instantiates a new instance, runs it to completion and closes it.
// What the instantiation reuses from earlier calls (freshSlot) holds nothing
// of theirs.
func (t *Tool) runFresh(ctx context.Context, st *callState, stdin []byte) (err error) {
	share, err := t.host.enterCall(ctx)
	if err != nil {
		st.fail(err)
		return st.failed()
	}
	defer t.host.leaveCall(share)
	if t.reset {
		return t.runReset(ctx, st, stdin) // reset.go
	}
	s := t.getSlot()
	s.arm(st, stdin)
	mem := &s.mem
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: host panic: %v", ErrTrap, r)
			s = nil // in an unknown state: not reused
		}
		// Runs last, once the instance is closed or failed to start: wazero
		// leaves the memory of a module whose data did not fit unfreed.
		mem.Free()
		st.memBytes = mem.peak
		if s != nil {
			s.disarm()
			t.putSlot(s)
		}
	}()
	if tb := t.mod.tableBytes; tb > 0 {
		if !t.host.reserve(tb) {
			st.fail(t.host.budget.err(tb))
			return st.failed()
		}
		defer t.host.budget.release(tb)
	}
	st.ctx.vals = s.vals
	cfg := s.cfg
	if st.argv != nil {
		cfg = cfg.WithArgs(st.argv...)
	}
	t.host.stats.instantiations.Add(1)
	defer st.disarmStop()
	mod, err := t.instantiate(ctx, st, &s.stop, cfg, t.starts)
	if err != nil {
		return err
	}
	defer mod.Close(context.Background())
	if t.mod.hasStart {
		return nil
	}
	// A reactor: _initialize ran as the start function; now the call.
	if err := mod.ExportedFunction("nanovm_call").CallWithStack(ctx, s.stack[:]); err != nil {
		return err
	}
	if code := uint32(s.stack[0]); code != 0 {
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

// ActsOutside reports whether a call may change anything outside its
// sandbox: the tool was granted the network (nanovm:http) or the host's
// files (wasi:fs). A tool without either can only compute its answer, so
// running it again (after a crash, say) has no effect but its output.
func (t *Tool) ActsOutside() bool {
	return slices.Contains(t.Granted, CapHTTP) || slices.Contains(t.Granted, CapFS)
}
