package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nanovm/nano-vm-mcp/internal/primary"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// The CLI beside a running server. A stdio primary holds the database
// (bbolt's lock) while it serves; the CLI then works through the
// primary's operator channel (internal/primary's DialOperator): the token
// file only the database's owner can read, presented as the first line of
// a socket connection. Each command makes there the very runtime call it
// makes on a database it opens itself, so it prints the same output.

// traceReader is what the step table needs (see printTrace).
type traceReader interface {
	Trace(ctx context.Context, id string, offset, limit int) (*runtime.TraceView, error)
	VerifyAudit(ctx context.Context, traceID string) (store.VerifyReport, error)
	Envelopes(ctx context.Context, traceID string) ([]store.Envelope, error)
}

// admin is what the administrative commands need of the database: the
// runtime when this process opens it (*runtime.Runtime), or the primary
// holding it (*remoteAdmin).
type admin interface {
	traceReader
	// StepEnvelope is one step's envelope (the viewer's step view).
	StepEnvelope(ctx context.Context, traceID string, index int) (*store.Envelope, error)
	Tools(ctx context.Context) ([]store.ToolRecord, error)
	Tool(ctx context.Context, ref string) (store.ToolRecord, error)
	RegisterToolLocal(ctx context.Context, manifest, wasm []byte) (store.ToolRecord, error)
	PullTool(ctx context.Context, ref string, manifest []byte) ([]store.ToolRecord, error)
	RemoveToolLocal(ctx context.Context, name string) error
	PutSecret(ctx context.Context, id, value string) (string, error)
	EraseSecret(ctx context.Context, id string) (store.Envelope, error)
	Secrets(ctx context.Context) ([]store.SecretRecord, error)
	Traces(ctx context.Context, f store.RunFilter) (store.RunPage, error)
	RunProgram(ctx context.Context, req runtime.RunRequest) (*runtime.RunResult, error)
	Resume(ctx context.Context, traceID string, payload any, source string, progress func(runtime.Progress)) (*runtime.RunResult, error)
	ContinueInterrupted(ctx context.Context, traceID string, progress func(runtime.Progress)) (*runtime.RunResult, error)
	Close() error
}

var _ admin = (*runtime.Runtime)(nil)

// idempotencyStore is what the idempotency commands need: the store
// (*store.DB) or the primary (*remoteAdmin).
type idempotencyStore interface {
	IdempotencyEntries(ctx context.Context) ([]store.IdempotencyEntry, error)
	DeleteIdempotencyKey(ctx context.Context, key string) (bool, error)
	Close() error
}

var _ idempotencyStore = (*store.DB)(nil)

// openAdmin opens the database for an administrative command: through the
// primary serving it when there is one, else directly. A database held
// by a process that serves no operator channel is an error naming it.
func (c *common) openAdmin(ctx context.Context) (admin, error) {
	r, dialErr := c.dialPrimary(ctx)
	if r != nil {
		return r, nil
	}
	rt, err := c.open(ctx)
	if err != nil {
		return nil, c.explainLocked(err, dialErr)
	}
	return rt, nil
}

// openUntilSignal is openAdmin under a context that SIGINT and SIGTERM
// cancel, for a command that runs programs; done closes the runtime and
// stops watching the signals.
func (c *common) openUntilSignal() (ctx context.Context, rt admin, done func(), err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rt, err = c.openAdmin(ctx)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, rt, func() { rt.Close(); stop() }, nil
}

// dialPrimary opens an operator session with the primary serving c.db, or
// returns why there is none (nil when there is no token file at all).
//
// A PostgreSQL database has no primary: every process opens it itself.
func (c *common) dialPrimary(ctx context.Context) (*remoteAdmin, error) {
	if postgres.IsDSN(c.db) {
		return nil, nil
	}
	oc, err := primary.DialOperator(ctx, c.db)
	if errors.Is(err, primary.ErrOperatorRefused) {
		// A token read just before a new primary replaced it.
		oc, err = primary.DialOperator(ctx, c.db)
	}
	if err != nil {
		if !exists(primary.OperatorTokenPath(c.db)) {
			return nil, nil
		}
		return nil, err
	}
	c.logger().Info("the database is served by a running server: working through its socket", "db", c.db, "socket", primary.SocketPath(c.db))
	return &remoteAdmin{c: oc}, nil
}

// explainLocked turns a locked database into an error that says who holds
// it and what to do; other errors pass unchanged.
func (c *common) explainLocked(err, dialErr error) error {
	if !errors.Is(err, store.ErrLocked) {
		return err
	}
	holder, what := "another process", "wait for it to finish or stop it, or point --db (NANO_VM_MCP_DB) elsewhere"
	if pid, args, ok := lockHolder(c.db); ok {
		holder = fmt.Sprintf("pid %d (%s)", pid, clip(strings.Join(args, " "), 120))
		if isHTTPServer(pid, args) {
			holder = "an HTTP server, " + holder
			what = "use its MCP endpoint (/mcp), or stop it and run the command again"
		}
	}
	msg := fmt.Sprintf("%s is held by %s: %s", c.db, holder, what)
	if dialErr != nil {
		msg += fmt.Sprintf(" (no server answered as the operator on %s: %v)", primary.SocketPath(c.db), dialErr)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// isHTTPServer reports whether the process pid with arguments args serves
// MCP over HTTP: --transport http|sse|streamable-http on its command line
// or in its environment.
func isHTTPServer(pid int, args []string) bool {
	httpish := func(v string) bool { return v == "http" || v == "sse" || v == "streamable-http" }
	for i, a := range args {
		a = strings.TrimPrefix(a, "-")
		if v, ok := strings.CutPrefix(a, "-transport="); ok && httpish(v) {
			return true
		}
		if (a == "-transport") && i+1 < len(args) && httpish(args[i+1]) {
			return true
		}
	}
	for _, kv := range processEnv(pid) {
		if v, ok := strings.CutPrefix(kv, "NANO_VM_MCP_TRANSPORT="); ok && httpish(v) {
			return true
		}
	}
	return false
}

// remoteAdmin is the database as a primary serves it to its operator.
type remoteAdmin struct{ c *primary.OperatorClient }

func (r *remoteAdmin) call(ctx context.Context, method string, params, out any) error {
	return remoteError(r.c.Call(ctx, method, params, out))
}

// callFor is r.call for a request that answers a T.
func callFor[T any](ctx context.Context, r *remoteAdmin, method string, params any) (T, error) {
	var out T
	err := r.call(ctx, method, params, &out)
	return out, err
}

// remoteError gives a primary's coded error back its runtime form, so
// that exitCode prints it as it prints a local one.
func remoteError(err error) error {
	var oe *primary.OperatorError
	if !errors.As(err, &oe) {
		return err
	}
	if oe.Code != "" {
		return &runtime.Error{Code: oe.Code, Message: oe.Message}
	}
	return errors.New(oe.Message)
}

func (r *remoteAdmin) Close() error { return r.c.Close() }

func (r *remoteAdmin) Tools(ctx context.Context) ([]store.ToolRecord, error) {
	return callFor[[]store.ToolRecord](ctx, r, "tools", nil)
}

func (r *remoteAdmin) Tool(ctx context.Context, ref string) (store.ToolRecord, error) {
	return callFor[store.ToolRecord](ctx, r, "tool", opParams{Ref: ref})
}

func (r *remoteAdmin) RegisterToolLocal(ctx context.Context, manifest, wasm []byte) (store.ToolRecord, error) {
	return callFor[store.ToolRecord](ctx, r, "register_tool", opParams{Manifest: manifest, Wasm: wasm})
}

func (r *remoteAdmin) PullTool(ctx context.Context, ref string, manifest []byte) ([]store.ToolRecord, error) {
	return callFor[[]store.ToolRecord](ctx, r, "pull_tool", opParams{Ref: ref, Manifest: manifest})
}

func (r *remoteAdmin) RemoveToolLocal(ctx context.Context, name string) error {
	return r.call(ctx, "remove_tool", opParams{Name: name}, nil)
}

func (r *remoteAdmin) PutSecret(ctx context.Context, id, value string) (string, error) {
	return callFor[string](ctx, r, "put_secret", opParams{ID: id, Value: value})
}

func (r *remoteAdmin) EraseSecret(ctx context.Context, id string) (store.Envelope, error) {
	return callFor[store.Envelope](ctx, r, "erase_secret", opParams{ID: id})
}

func (r *remoteAdmin) Secrets(ctx context.Context) ([]store.SecretRecord, error) {
	return callFor[[]store.SecretRecord](ctx, r, "secrets", nil)
}

func (r *remoteAdmin) VerifyAudit(ctx context.Context, traceID string) (store.VerifyReport, error) {
	return callFor[store.VerifyReport](ctx, r, "verify_audit", opParams{ID: traceID})
}

func (r *remoteAdmin) Envelopes(ctx context.Context, traceID string) ([]store.Envelope, error) {
	return callFor[[]store.Envelope](ctx, r, "envelopes", opParams{ID: traceID})
}

// StepEnvelope asks the primary for one step's envelope; a primary of an
// earlier release, which does not know the request, sends them all.
func (r *remoteAdmin) StepEnvelope(ctx context.Context, traceID string, index int) (*store.Envelope, error) {
	var out *store.Envelope
	err := r.call(ctx, "step_envelope", opParams{ID: traceID, Offset: index}, &out)
	if err != nil && strings.Contains(err.Error(), `unknown request "step_envelope"`) {
		envs, err := r.Envelopes(ctx, traceID)
		if err != nil {
			return nil, err
		}
		for i := range envs {
			if envs[i].Kind == store.EnvelopeKindStep && envs[i].StepIndex == index {
				return &envs[i], nil
			}
		}
		return nil, nil
	}
	return out, err
}

func (r *remoteAdmin) Traces(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	return callFor[store.RunPage](ctx, r, "traces", opParams{Filter: &f})
}

func (r *remoteAdmin) Trace(ctx context.Context, id string, offset, limit int) (*runtime.TraceView, error) {
	var out runtime.TraceView
	if err := r.call(ctx, "trace", opParams{ID: id, Offset: offset, Limit: limit}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// The run methods report no progress: the primary's notifications are
// MCP's, and an operator session is not MCP.

func (r *remoteAdmin) RunProgram(ctx context.Context, req runtime.RunRequest) (*runtime.RunResult, error) {
	return r.run(ctx, "run", opParams{Program: req.Program, ProgramID: req.ProgramID, Input: req.Input, IdempotencyKey: req.IdempotencyKey, SaveAs: req.SaveAs})
}

func (r *remoteAdmin) Resume(ctx context.Context, traceID string, payload any, source string, _ func(runtime.Progress)) (*runtime.RunResult, error) {
	return r.run(ctx, "resume", opParams{ID: traceID, Payload: payload, Source: source})
}

func (r *remoteAdmin) ContinueInterrupted(ctx context.Context, traceID string, _ func(runtime.Progress)) (*runtime.RunResult, error) {
	return r.run(ctx, "continue", opParams{ID: traceID})
}

func (r *remoteAdmin) run(ctx context.Context, method string, p opParams) (*runtime.RunResult, error) {
	var out runReply
	if err := r.call(ctx, method, p, &out); err != nil {
		return nil, err
	}
	if out.Error != nil {
		return out.Result, remoteError(out.Error)
	}
	return out.Result, nil
}

func (r *remoteAdmin) IdempotencyEntries(ctx context.Context) ([]store.IdempotencyEntry, error) {
	var wire []idempotencyWire
	if err := r.call(ctx, "idempotency_ls", nil, &wire); err != nil {
		return nil, err
	}
	out := make([]store.IdempotencyEntry, len(wire))
	for i, w := range wire {
		out[i] = store.IdempotencyEntry{Key: w.Key, Record: w.Record}
		if w.Corrupt != "" {
			out[i].Err = errors.New(w.Corrupt)
		}
	}
	return out, nil
}

func (r *remoteAdmin) DeleteIdempotencyKey(ctx context.Context, key string) (found bool, err error) {
	err = r.call(ctx, "idempotency_rm", opParams{Key: key}, &found)
	return found, err
}

// opParams are every operator request's parameters; each uses its own.
type opParams struct {
	Ref            string           `json:"ref,omitempty"`
	Name           string           `json:"name,omitempty"`
	ID             string           `json:"id,omitempty"`
	Value          string           `json:"value,omitempty"`
	Key            string           `json:"key,omitempty"`
	Manifest       []byte           `json:"manifest,omitempty"`
	Wasm           []byte           `json:"wasm,omitempty"`
	Program        []byte           `json:"program,omitempty"`
	ProgramID      string           `json:"program_id,omitempty"`
	Input          map[string]any   `json:"input,omitempty"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	SaveAs         string           `json:"save_as,omitempty"`
	Payload        any              `json:"payload,omitempty"`
	Source         string           `json:"source,omitempty"`
	Offset         int              `json:"offset,omitempty"`
	Limit          int              `json:"limit,omitempty"`
	Filter         *store.RunFilter `json:"filter,omitempty"`
}

// runReply is a run's answer: a run can return a result and an error.
type runReply struct {
	Result *runtime.RunResult     `json:"result,omitempty"`
	Error  *primary.OperatorError `json:"error,omitempty"`
}

// idempotencyWire is one store.IdempotencyEntry on the socket.
type idempotencyWire struct {
	Key     string                  `json:"key"`
	Record  store.IdempotencyRecord `json:"record"`
	Corrupt string                  `json:"corrupt,omitempty"`
}

// operatorHandler serves the CLI's operator requests on the primary, with
// the same runtime calls the CLI makes on a database it opens itself:
// tools register and are removed as the operator's (source operator).
func operatorHandler(rt *runtime.Runtime) primary.OperatorFunc {
	return func(ctx context.Context, method string, raw json.RawMessage) (any, error) {
		var p opParams
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf("operator %s: params: %w", method, err)
			}
		}
		res, err := operatorCall(ctx, rt, method, p)
		if err != nil {
			return nil, operatorError(err)
		}
		return res, nil
	}
}

func operatorError(err error) *primary.OperatorError {
	if e, ok := runtime.AsError(err); ok {
		return &primary.OperatorError{Code: e.Code, Message: e.Message}
	}
	return &primary.OperatorError{Message: err.Error()}
}

func operatorCall(ctx context.Context, rt *runtime.Runtime, method string, p opParams) (any, error) {
	runReplyOf := func(res *runtime.RunResult, err error) (any, error) {
		out := runReply{Result: res}
		if err != nil {
			if res == nil {
				return nil, err
			}
			out.Error = operatorError(err)
		}
		return out, nil
	}
	switch method {
	case "tools":
		return rt.Tools(ctx)
	case "tool":
		return rt.Tool(ctx, p.Ref)
	case "register_tool":
		return rt.RegisterToolLocal(ctx, p.Manifest, p.Wasm)
	case "pull_tool":
		return rt.PullTool(ctx, p.Ref, p.Manifest)
	case "remove_tool":
		return true, rt.RemoveToolLocal(ctx, p.Name)
	case "put_secret":
		return rt.PutSecret(ctx, p.ID, p.Value)
	case "erase_secret":
		return rt.EraseSecret(ctx, p.ID)
	case "secrets":
		recs, err := rt.Secrets(ctx)
		for i := range recs {
			// secret ls shows no value: the encrypted one stays home too.
			recs[i].Nonce, recs[i].Ciphertext = nil, nil
		}
		return recs, err
	case "verify_audit":
		return rt.VerifyAudit(ctx, p.ID)
	case "traces":
		var f store.RunFilter
		if p.Filter != nil {
			f = *p.Filter
		}
		return rt.Traces(ctx, f)
	case "trace":
		return rt.Trace(ctx, p.ID, p.Offset, p.Limit)
	case "envelopes":
		return rt.Envelopes(ctx, p.ID)
	case "step_envelope":
		return rt.StepEnvelope(ctx, p.ID, p.Offset)
	case "policy":
		return viewer.PolicyViewOf(rt.Policy())
	case "run":
		return runReplyOf(rt.RunProgram(ctx, runtime.RunRequest{Program: p.Program, ProgramID: p.ProgramID, Input: p.Input, IdempotencyKey: p.IdempotencyKey, SaveAs: p.SaveAs}))
	case "resume":
		return runReplyOf(rt.Resume(ctx, p.ID, p.Payload, p.Source, nil))
	case "continue":
		return runReplyOf(rt.ContinueInterrupted(ctx, p.ID, nil))
	case "idempotency_ls", "idempotency_rm":
		db, ok := rt.Store().(idempotencyStore)
		if !ok {
			return nil, fmt.Errorf("operator %s: the store keeps no idempotency keys", method)
		}
		if method == "idempotency_rm" {
			return db.DeleteIdempotencyKey(ctx, p.Key)
		}
		entries, err := db.IdempotencyEntries(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]idempotencyWire, len(entries))
		for i, e := range entries {
			out[i] = idempotencyWire{Key: e.Key, Record: e.Record}
			if e.Err != nil {
				out[i].Corrupt = e.Err.Error()
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("operator: unknown request %q", method)
}
