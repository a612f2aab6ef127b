package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Extism plugins. A module that imports extism:host/env is an Extism plugin:
// this host implements that module itself (see .rationale/sandbox.md, "Why
// our own extism:host/env?"), function by function under the same
// capability gates as the nanovm imports, and runs the hyper-mcp plugin
// shapes on it:
//
//   - v1 exports describe (no input; a ListToolsResult) and call (input
//     {"params": {"name", "arguments"}}; a CallToolResult);
//   - v2 exports list_tools (input {"context": {...}}; a ListToolsResult)
//     and call_tool (input {"request": {"name", "arguments"}, "context":
//     {...}}; a CallToolResult).
//
// Each tool a plugin describes is registered under its own name, all of them
// sharing the module (Registry.RegisterPlugin).

// The Extism import modules.
const (
	extismEnvModule  = "extism:host/env"
	extismUserModule = "extism:host/user"
)

// ExtismShape is which hyper-mcp plugin ABI a module speaks.
type ExtismShape string

// The plugin shapes.
const (
	// ExtismV1 exports describe and call.
	ExtismV1 ExtismShape = "hyper-mcp-v1"
	// ExtismV2 exports list_tools and call_tool.
	ExtismV2 ExtismShape = "hyper-mcp-v2"
)

// listExport and callExport are the entry points of each shape.
func (s ExtismShape) listExport() string {
	if s == ExtismV2 {
		return "list_tools"
	}
	return "describe"
}

func (s ExtismShape) callExport() string {
	if s == ExtismV2 {
		return "call_tool"
	}
	return "call"
}

const i64 = api.ValueTypeI64

// extismFunc is one extism:host/env function and the capability that
// links it.
type extismFunc struct {
	name    string
	cap     Capability
	params  []api.ValueType
	results []api.ValueType
	fn      func(h *Host, ctx context.Context, mod api.Module, ek *extismCall, stack []uint64)
}

// extismFuncs is every extism:host/env function this host implements, with
// go-sdk v1.7.1's signatures. The kernel ones (memory, input, output,
// error, config, vars) are in wasi:stdio, which every tool holds: they
// reach nothing outside the call. http_* need nanovm:http, log_* nanovm:log.
var extismFuncs = []extismFunc{
	{"alloc", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.alloc(s[0])
	}},
	{"free", CapStdio, []api.ValueType{i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) { ek.free(s[0]) }},
	{"length", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.blocks[s[0]]
	}},
	{"length_unsafe", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.blocks[s[0]]
	}},
	{"load_u8", CapStdio, []api.ValueType{i64}, []api.ValueType{i32}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(ek.bytes(s[0], 1)[0])
	}},
	{"load_u64", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = le64(ek.bytes(s[0], 8))
	}},
	{"store_u8", CapStdio, []api.ValueType{i64, i32}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		ek.bytes(s[0], 1)[0] = byte(s[1])
	}},
	{"store_u64", CapStdio, []api.ValueType{i64, i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		b := ek.bytes(s[0], 8)
		for i := range 8 {
			b[i] = byte(s[1] >> (8 * i))
		}
	}},
	{"input_length", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(len(ek.input))
	}},
	{"input_offset", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.inputOffset()
	}},
	{"input_load_u8", CapStdio, []api.ValueType{i64}, []api.ValueType{i32}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(ek.inputBytes(s[0], 1)[0])
	}},
	{"input_load_u64", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = le64(ek.inputBytes(s[0], 8))
	}},
	{"output_set", CapStdio, []api.ValueType{i64, i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		ek.setOutput(s[0], s[1])
	}},
	{"error_set", CapStdio, []api.ValueType{i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		if s[0] == 0 {
			ek.errMsg = ""
			return
		}
		ek.errMsg = string(ek.block(s[0]))
	}},
	{"config_get", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		v, ok := ek.st.tool.Manifest.Config[string(ek.block(s[0]))]
		s[0] = 0
		if ok {
			s[0] = ek.write([]byte(v))
		}
	}},
	{"var_get", CapStdio, []api.ValueType{i64}, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		v, ok := ek.vars[string(ek.block(s[0]))]
		ek.free(s[0])
		s[0] = 0
		if ok {
			s[0] = ek.write(v)
		}
	}},
	{"var_set", CapStdio, []api.ValueType{i64, i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		ek.setVar(s[0], s[1])
	}},
	{"input_set", CapStdio, []api.ValueType{i64, i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		ek.input, ek.inputOff = append([]byte(nil), ek.bytes(s[0], s[1])...), 0
	}},
	{"output_length", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(len(ek.output))
	}},
	{"output_offset", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.write(ek.output)
	}},
	{"error_get", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = ek.write([]byte(ek.errMsg))
	}},
	{"memory_bytes", CapStdio, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(len(ek.mem))
	}},
	{"reset", CapStdio, nil, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, _ []uint64) {
		ek.mem, ek.inputOff = ek.mem[:kernelBase], 0
		clear(ek.blocks)
	}},
	{"get_log_level", CapStdio, nil, []api.ValueType{i32}, func(_ *Host, _ context.Context, _ api.Module, _ *extismCall, s []uint64) {
		s[0] = 0 // trace: every line goes to the call's log, capped there
	}},
	{"http_request", CapHTTP, []api.ValueType{i64, i64}, []api.ValueType{i64}, func(h *Host, ctx context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = h.extismHTTP(ctx, ek, s[0], s[1])
	}},
	{"http_status_code", CapHTTP, nil, []api.ValueType{i32}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = uint64(uint32(int32(ek.status)))
	}},
	{"http_headers", CapHTTP, nil, []api.ValueType{i64}, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		s[0] = 0
		if ek.headers != nil {
			b, _ := json.Marshal(ek.headers)
			s[0] = ek.write(b)
		}
	}},
	logFunc("log_trace", "trace"), logFunc("log_debug", "debug"), logFunc("log_info", "info"),
	logFunc("log_warn", "warn"), logFunc("log_error", "error"),
}

func logFunc(name, level string) extismFunc {
	return extismFunc{name, CapLog, []api.ValueType{i64}, nil, func(_ *Host, _ context.Context, _ api.Module, ek *extismCall, s []uint64) {
		msg := ek.block(s[0])
		line := make([]byte, 0, len(level)+len(msg)+3)
		line = append(append(append(append(line, level...), ": "...), msg...), '\n')
		_, _ = ek.st.stderr.Write(line)
		ek.free(s[0])
	}}
}

// extismImports lists the "module.name" of the functions of capability c,
// for capabilityImports.
func extismImports(c Capability) []string {
	var out []string
	for _, f := range extismFuncs {
		if f.cap == c {
			out = append(out, extismEnvModule+"."+f.name)
		}
	}
	return out
}

// exportExtism adds to b the extism:host/env functions s grants.
func (h *Host) exportExtism(b wazero.HostModuleBuilder, s capSet) {
	for _, f := range extismFuncs {
		if !s[f.cap] {
			continue
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			ek, _ := ctx.Value(extismKey{}).(*extismCall)
			if ek == nil || !ek.st.tool.caps[f.cap] {
				panic(detail(ErrImportNotGranted, "%s.%s called outside a call that holds %s", extismEnvModule, f.name, f.cap))
			}
			f.fn(h, ctx, mod, ek, stack)
		}), f.params, f.results).Export(f.name)
	}
}

// extismKey carries a call's *extismCall in its context.
type extismKey struct{}

// errExtism is the trap an Extism host function raises on a bad offset or a
// breached limit: the plugin's call ends there.
var errExtism = errors.New("extism host function refused")

// kernelBase is the first offset the kernel hands out: 0 means "none" in
// the Extism ABI, and the low bytes are never valid.
const kernelBase = 8

// maxExtismVars bounds the bytes of one call's var store, as go-sdk's
// default MaxVarBytes does.
const maxExtismVars = 1 << 20

// extismCall is the host side of one plugin call: the kernel memory (a
// bump allocator over one byte slice, charged to the host's memory budget
// and held to the tool's memory limit), the input, the output and error,
// the vars (which live as long as the call) and the last HTTP response's
// status and headers.
type extismCall struct {
	st      *callState
	host    *Host
	mem     []byte
	blocks  map[uint64]uint64 // offset -> length of each live block
	limit   uint64
	charged uint64

	input     []byte
	inputOff  uint64
	output    []byte
	hasOutput bool
	errMsg    string
	vars      map[string][]byte
	varBytes  int
	status    int
	headers   map[string]string
}

func newExtismCall(st *callState, h *Host, input []byte, limit uint64) *extismCall {
	return &extismCall{st: st, host: h, mem: make([]byte, kernelBase), blocks: map[uint64]uint64{}, limit: limit, input: input, vars: map[string][]byte{}}
}

// refuse fails the call with err and stops the guest with a trap.
func (ek *extismCall) refuse(err error) {
	ek.st.fail(err)
	panic(fmt.Errorf("%w: %w", errExtism, err))
}

func (ek *extismCall) alloc(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	off := uint64(len(ek.mem))
	end := off + n
	if n > ek.limit || end > ek.limit {
		ek.refuse(detail(ErrMemoryLimit, "extism kernel memory: allocating %d bytes would pass the memory limit %s", n, mib(ek.limit)))
	}
	if end > uint64(cap(ek.mem)) {
		// Grow by doubling, never past the limit; what is held is what
		// is charged.
		size := min(max(end, 2*uint64(cap(ek.mem)), 4096), ek.limit)
		if size > ek.charged && !ek.host.reserve(size-ek.charged) {
			ek.refuse(ek.host.budget.err(size - ek.charged))
		}
		ek.charged = max(ek.charged, size)
		grown := make([]byte, off, size)
		copy(grown, ek.mem)
		ek.mem = grown
	}
	ek.mem = ek.mem[:end]
	clear(ek.mem[off:end]) // a freed tail may be handed out again
	ek.blocks[off] = n
	return off
}

// free forgets a block; the last block's bytes are handed back.
func (ek *extismCall) free(off uint64) {
	n, ok := ek.blocks[off]
	if !ok {
		return
	}
	delete(ek.blocks, off)
	if off+n == uint64(len(ek.mem)) && off != ek.inputOff {
		ek.mem = ek.mem[:off]
	}
}

// release hands the call's kernel memory back to the budget.
func (ek *extismCall) release() {
	ek.host.budget.release(ek.charged)
	ek.charged, ek.mem = 0, nil
}

// bytes is n bytes of kernel memory at off, or a trap.
func (ek *extismCall) bytes(off, n uint64) []byte {
	if off < kernelBase || off > uint64(len(ek.mem)) || n > uint64(len(ek.mem))-off {
		panic(fmt.Errorf("%w: kernel memory offset %d (+%d) is out of bounds", errExtism, off, n))
	}
	return ek.mem[off : off+n]
}

// block is the whole block at off; offset 0 is empty.
func (ek *extismCall) block(off uint64) []byte {
	if off == 0 {
		return nil
	}
	n, ok := ek.blocks[off]
	if !ok {
		panic(fmt.Errorf("%w: %d is not an allocated block", errExtism, off))
	}
	return ek.bytes(off, n)
}

func (ek *extismCall) write(b []byte) uint64 {
	off := ek.alloc(uint64(len(b)))
	if off != 0 {
		copy(ek.mem[off:], b)
	}
	return off
}

func (ek *extismCall) inputBytes(off, n uint64) []byte {
	if off > uint64(len(ek.input)) || n > uint64(len(ek.input))-off {
		panic(fmt.Errorf("%w: input offset %d (+%d) is out of bounds", errExtism, off, n))
	}
	return ek.input[off : off+n]
}

// inputOffset copies the input into kernel memory once (input_offset).
func (ek *extismCall) inputOffset() uint64 {
	if ek.inputOff == 0 {
		ek.inputOff = ek.write(ek.input)
	}
	return ek.inputOff
}

func (ek *extismCall) setOutput(off, n uint64) {
	if max := uint64(ek.st.tool.lim.stdout); n > max {
		ek.refuse(detail(ErrOutputLimit, "plugin output is %d bytes, the limit is %d", n, max))
	}
	var b []byte
	if n > 0 {
		b = ek.bytes(off, n)
	}
	ek.output, ek.hasOutput = append([]byte(nil), b...), true
}

func (ek *extismCall) setVar(keyOff, valOff uint64) {
	key := string(ek.block(keyOff))
	ek.free(keyOff)
	if old, ok := ek.vars[key]; ok {
		ek.varBytes -= len(key) + len(old)
		delete(ek.vars, key)
	}
	if valOff == 0 {
		return
	}
	val := append([]byte(nil), ek.block(valOff)...)
	ek.free(valOff)
	if ek.varBytes+len(key)+len(val) > maxExtismVars {
		ek.refuse(detail(ErrMemoryLimit, "extism vars: more than %d bytes", maxExtismVars))
	}
	ek.vars[key] = val
	ek.varBytes += len(key) + len(val)
}

func le64(b []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

// extismHTTPRequest is the JSON a plugin passes to http_request.
type extismHTTPRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// extismHTTP is http_request(req, body) -> response body: nanovm:http's
// rules (the manifest's allowed hosts, every redirect checked, the host's
// timeout and response cap). A refused host fails the call naming it, as
// an Extism host does.
func (h *Host) extismHTTP(ctx context.Context, ek *extismCall, reqOff, bodyOff uint64) uint64 {
	ek.status, ek.headers = 0, nil
	var req extismHTTPRequest
	if err := json.Unmarshal(ek.block(reqOff), &req); err != nil {
		ek.refuse(detail(ErrToolFailed, "http_request: the request is not JSON: %v", err))
	}
	ek.free(reqOff)
	var body io.Reader
	if bodyOff != 0 {
		body = strings.NewReader(string(ek.block(bodyOff)))
		ek.free(bodyOff)
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		ek.refuse(detail(ErrToolFailed, "http_request: %q is not an http(s) URL", req.URL))
	}
	allowed := ek.st.tool.Manifest.AllowedHosts
	if !hostAllowed(allowed, u) {
		ek.refuse(detail(ErrCapabilityDenied, "http_request to %s refused: %v (allowed_hosts %q)", u.Host, errHostNotAllowed, allowed))
	}
	rctx, cancel := context.WithTimeout(ctx, h.opts.HTTPTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(rctx, strings.ToUpper(req.Method), u.String(), body)
	if err != nil {
		ek.refuse(detail(ErrToolFailed, "http_request: %v", err))
	}
	resp, err := h.doAllowed(hreq, req.Headers, allowed)
	if err != nil {
		if errors.Is(err, errHostNotAllowed) {
			ek.refuse(detail(ErrCapabilityDenied, "http_request to %s: a redirect left allowed_hosts %q", u.Host, allowed))
		}
		ek.refuse(detail(ErrToolFailed, "http_request to %s: %v", u.Host, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.HTTPMaxResponseBytes+1))
	if err != nil {
		ek.refuse(detail(ErrToolFailed, "http_request to %s: reading the response: %v", u.Host, err))
	}
	if int64(len(data)) > h.opts.HTTPMaxResponseBytes {
		ek.refuse(detail(ErrOutputLimit, "http_request to %s: response over %d bytes", u.Host, h.opts.HTTPMaxResponseBytes))
	}
	ek.status = resp.StatusCode
	ek.headers = map[string]string{}
	for k, v := range resp.Header {
		ek.headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if len(data) == 0 {
		return 0
	}
	return ek.write(data)
}

// extismShape reads which plugin shape a module's exports make, "" for
// none. Both entry points must be functions () -> i32.
func extismShape(exports map[string]bool) ExtismShape {
	switch {
	case exports["list_tools"] && exports["call_tool"]:
		return ExtismV2
	case exports["describe"] && exports["call"]:
		return ExtismV1
	}
	return ""
}

// runExtism runs one export of a plugin in a fresh instance with input,
// and returns what the plugin set as its output. A non-zero return or an
// error_set fails the call with the plugin's message.
func (t *Tool) runExtism(ctx context.Context, st *callState, fn string, input []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: host panic: %v", ErrTrap, r)
		}
	}()
	mem := &limitedMemory{limit: st.memLimit, held: t.lim.memory - st.memLimit, onHit: st.fail, host: t.host}
	defer mem.Free()
	if tb := t.mod.tableBytes; tb > 0 {
		if !t.host.reserve(tb) {
			st.fail(t.host.budget.err(tb))
			return nil, st.failed()
		}
		defer t.host.budget.release(tb)
	}
	ek := newExtismCall(st, t.host, input, st.memLimit)
	defer ek.release()
	ctx = context.WithValue(ctx, extismKey{}, ek)
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return mem }))
	ctx = experimental.WithImportResolver(ctx, t.link.resolver)
	cfg := t.base.WithStdout(&st.stdout).WithStderr(&st.stderr)
	if !t.caps[CapRandom] {
		cfg = cfg.WithRandSource(deterministicRand())
	}
	t.host.stats.instantiations.Add(1)
	var stop stopper
	defer st.disarmStop()
	mod, err := t.instantiate(ctx, st, &stop, cfg, t.starts)
	if err != nil {
		return nil, err
	}
	defer mod.Close(context.Background())
	f := mod.ExportedFunction(fn)
	if f == nil {
		return nil, detail(ErrInvalidModule, "plugin does not export %s", fn)
	}
	ret, err := f.Call(ctx)
	if err != nil {
		return nil, err
	}
	if rc := uint32(ret[0]); rc != 0 || ek.errMsg != "" {
		msg := ek.errMsg
		if msg == "" {
			msg = fmt.Sprintf("%s returned %d", fn, rc)
		}
		return nil, detail(ErrToolFailed, "%s", jsonlimit.Excerpt(msg, maxErrorExcerpt))
	}
	return ek.output, nil
}
