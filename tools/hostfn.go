package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Status codes the nanovm host functions return (docs/tool-abi.md).
const (
	statusOK       = 0 // done
	statusDenied   = 1 // the capability or the host is not granted
	statusTooSmall = 2 // the buffer is too small; *out_len says how big
	statusNotFound = 3 // no such secret
	statusInvalid  = 4 // a pointer is out of bounds or the request is malformed
	statusLimit    = 5 // a size or time cap was hit
	statusIO       = 6 // the request failed
)

const i32 = api.ValueTypeI32

// exportNanovm adds to b the nanovm functions s grants, and only those.
func (h *Host) exportNanovm(b wazero.HostModuleBuilder, s capSet) {
	if s[CapLog] {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(h.hostLog), []api.ValueType{i32, i32, i32}, nil).
			WithParameterNames("level", "msg", "msg_len").Export("log")
	}
	if s[CapSecrets] {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(h.hostSecretGet), []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).
			WithParameterNames("ref", "ref_len", "buf", "buf_cap", "out_len").Export("secret_get")
	}
	if s[CapHTTP] {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(h.hostHTTPRequest), []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).
			WithParameterNames("req", "req_len", "buf", "buf_cap", "out_len").Export("http_request")
	}
	if s[CapState] {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(h.hostStateGet), []api.ValueType{i32, i32, i32}, []api.ValueType{i32}).
			WithParameterNames("buf", "buf_cap", "out_len").Export("state_get")
	}
}

// holds is the call-time half of the capability check: even a linked
// function refuses a caller whose call does not hold c.
func holds(ctx context.Context, c Capability) *callState {
	st := stateFrom(ctx)
	if st == nil || !st.tool.caps[c] {
		return nil
	}
	return st
}

var logLevels = []string{"debug", "info", "warn", "error"}

// hostLog is nanovm.log(level, msg, len): one line in the call's log.
func (h *Host) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	st := holds(ctx, CapLog)
	if st == nil {
		return
	}
	level, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	msg, ok := mod.Memory().Read(ptr, n)
	if !ok {
		return
	}
	lv := "info"
	if int(level) < len(logLevels) {
		lv = logLevels[level]
	}
	line := make([]byte, 0, len(msg)+len(lv)+3)
	line = append(append(append(append(line, lv...), ": "...), msg...), '\n')
	_, _ = st.stderr.Write(line)
}

// hostSecretGet is nanovm.secret_get(ref, ref_len, buf, cap, out_len).
func (h *Host) hostSecretGet(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(h.secretGet(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])))
}

func (h *Host) secretGet(ctx context.Context, mod api.Module, refPtr, refLen, buf, bufCap, outLen uint32) uint32 {
	return inOut(ctx, mod, CapSecrets, h.resolveSecret, refPtr, refLen, buf, bufCap, outLen)
}

// resolveSecret is secret_get's work: the value of the vault reference
// ref, if the call may have it.
func (h *Host) resolveSecret(ctx context.Context, st *callState, ref []byte) ([]byte, uint32) {
	if !strings.HasPrefix(string(ref), "vault://secret/") {
		return nil, statusInvalid
	}
	refStr := string(ref)
	// Secrets by need: only a ref the call was given, and only one the
	// policy lets this tool use. A refusal is an attempt on the record.
	if why := st.secretAccess(refStr); why != "" {
		st.attempt(refStr, why)
		h.opts.Logger.Warn("secret_get denied", "tool", st.tool.Manifest.Name, "trace", st.traceID, "why", why)
		return nil, statusDenied
	}
	if h.opts.Secrets == nil {
		return nil, statusNotFound
	}
	val, err := h.opts.Secrets.ResolveSecret(ctx, st.traceID, refStr)
	if err != nil {
		h.opts.Logger.Debug("secret_get refused", "tool", st.tool.Manifest.Name, "ref", refStr, "err", err)
		return nil, statusNotFound
	}
	st.mu.Lock()
	st.resolved = true
	if val != "" {
		if st.secrets == nil {
			st.secrets = map[string]string{}
		}
		st.secrets[val] = refStr
	}
	st.mu.Unlock()
	return []byte(val), statusOK
}

// hostStateGet is nanovm.state_get(buf, cap, out_len).
func (h *Host) hostStateGet(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(h.stateGet(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2])))
}

// stateGet writes the call's projected state as JSON. The caller projected
// it; the host never sees or hands out anything wider.
func (h *Host) stateGet(ctx context.Context, mod api.Module, buf, bufCap, outLen uint32) uint32 {
	st := holds(ctx, CapState)
	if st == nil {
		return statusDenied
	}
	return writeOut(mod.Memory(), st.state, buf, bufCap, outLen)
}

// inOut runs a nanovm function of the ABI (in, in_len, buf, buf_cap,
// out_len) -> status: the call must hold c, in must lie in the guest's
// memory, and what do returns with statusOK is written out by writeOut;
// any other status is returned as it is.
func inOut(ctx context.Context, mod api.Module, c Capability, do func(ctx context.Context, st *callState, in []byte) ([]byte, uint32), inPtr, inLen, buf, bufCap, outLen uint32) uint32 {
	st := holds(ctx, c)
	if st == nil {
		return statusDenied
	}
	mem := mod.Memory()
	in, ok := mem.Read(inPtr, inLen)
	if !ok {
		return statusInvalid
	}
	out, status := do(ctx, st, in)
	if status != statusOK {
		return status
	}
	return writeOut(mem, out, buf, bufCap, outLen)
}

// writeOut copies data to buf if it fits and stores its length at outLen.
func writeOut(mem api.Memory, data []byte, buf, bufCap, outLen uint32) uint32 {
	if !mem.WriteUint32Le(outLen, uint32(len(data))) {
		return statusInvalid
	}
	if uint32(len(data)) > bufCap {
		return statusTooSmall
	}
	if !mem.Write(buf, data) {
		return statusInvalid
	}
	return statusOK
}

// httpRequest is the JSON a guest passes to nanovm.http_request.
type httpRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// httpResponse is the JSON nanovm.http_request writes back.
type httpResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// errHostNotAllowed is returned (to the guest, as statusDenied) when a URL
// or a redirect leaves the tool's allowed hosts.
var errHostNotAllowed = errors.New("host not allowed")

// hostHTTPRequest is nanovm.http_request(req, req_len, buf, cap, out_len).
func (h *Host) hostHTTPRequest(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(h.httpRequest(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])))
}

func (h *Host) httpRequest(ctx context.Context, mod api.Module, reqPtr, reqLen, buf, bufCap, outLen uint32) uint32 {
	return inOut(ctx, mod, CapHTTP, h.doHTTPRequest, reqPtr, reqLen, buf, bufCap, outLen)
}

// doHTTPRequest is http_request's work: send the request raw describes,
// if the tool may reach its host, and encode the response.
func (h *Host) doHTTPRequest(ctx context.Context, st *callState, raw []byte) ([]byte, uint32) {
	var req httpRequest
	if err := json.Unmarshal(raw, &req); err != nil || req.URL == "" {
		return nil, statusInvalid
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, statusInvalid
	}
	allowed := st.tool.Manifest.AllowedHosts
	if !hostAllowed(allowed, u) {
		st.stderr.Write(fmt.Appendf(nil, "nanovm: http_request to %s refused: %v\n", u.Host, errHostNotAllowed))
		return nil, statusDenied
	}
	rctx, cancel := context.WithTimeout(ctx, h.opts.HTTPTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(rctx, req.Method, u.String(), strings.NewReader(req.Body))
	if err != nil {
		return nil, statusInvalid
	}
	resp, err := h.doAllowed(hreq, req.Headers, allowed)
	if err != nil {
		if errors.Is(err, errHostNotAllowed) {
			return nil, statusDenied
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, statusLimit
		}
		return nil, statusIO
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.HTTPMaxResponseBytes+1))
	if err != nil {
		return nil, statusIO
	}
	if int64(len(body)) > h.opts.HTTPMaxResponseBytes {
		return nil, statusLimit
	}
	out := httpResponse{Status: resp.StatusCode, Headers: map[string]string{}, Body: string(body)}
	for k := range resp.Header {
		out.Headers[k] = resp.Header.Get(k)
	}
	enc, err := json.Marshal(out)
	if err != nil {
		return nil, statusIO
	}
	return bytes.TrimSpace(enc), statusOK
}

// doAllowed sends hreq with headers set on the host's client, whose
// redirects stop after five hops or at the first host outside allowed
// (errHostNotAllowed). Both http_request ABIs send through it.
func (h *Host) doAllowed(hreq *http.Request, headers map[string]string, allowed []string) (*http.Response, error) {
	for k, v := range headers {
		hreq.Header.Set(k, v)
	}
	client := *h.http
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 || !hostAllowed(allowed, r.URL) {
			return errHostNotAllowed
		}
		return nil
	}
	return client.Do(hreq)
}

// hostAllowed matches u's host against "host", "host:port" and "*.domain"
// entries. A bare host matches any port; a wildcard matches subdomains only.
func hostAllowed(allowed []string, u *url.URL) bool {
	hostname, port := u.Hostname(), u.Port()
	for _, a := range allowed {
		ah, ap, err := net.SplitHostPort(a)
		if err != nil {
			ah, ap = a, ""
		}
		if ap != "" && ap != port {
			continue
		}
		if strings.HasPrefix(ah, "*.") {
			if strings.HasSuffix(hostname, ah[1:]) && len(hostname) > len(ah)-1 {
				return true
			}
			continue
		}
		if strings.EqualFold(ah, hostname) {
			return true
		}
	}
	return false
}

func sortCaps(c []Capability) { slices.Sort(c) }
