package viewer

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Prefix is the path the viewer is served under; Handler expects the
// full path (mount it at Prefix, without stripping it).
const Prefix = "/ui/"

// apiPrefix starts every JSON API path.
const apiPrefix = Prefix + "api/"

// Bounds of the API's answers.
const (
	// MaxRunsPage is the most runs one page of /ui/api/traces holds
	// (default 50).
	MaxRunsPage = 200
	// MaxScan is the most stored runs one /ui/api/traces request reads
	// when a filter the store cannot apply (program name, time) is set;
	// the answer's next_cursor continues the scan.
	MaxScan = 5_000
	// MaxStepsPage is the most step summaries one /ui/api/traces/{id}
	// answer holds; next_offset continues.
	MaxStepsPage = 5_000
	// MaxOutputBytes caps one step's output (and log) as
	// /ui/api/traces/{id}/steps/{index} returns it; a larger one comes as
	// a preview.
	MaxOutputBytes = 256 << 10
	// maxNameBytes clips names, ids and errors in the summaries.
	maxNameBytes = 200
)

// Source is what the viewer reads: the runtime's read functions
// (*runtime.Runtime has all but Policy; Local adds it), or the same calls
// made through a running server's operator channel.
type Source interface {
	// Traces lists runs newest first (list_traces).
	Traces(ctx context.Context, f store.RunFilter) (store.RunPage, error)
	// Trace reads a trace in its TRACE projection, a page of steps
	// (get_trace).
	Trace(ctx context.Context, id string, offset, limit int) (*runtime.TraceView, error)
	// VerifyAudit verifies the chain, or one trace's envelopes
	// (verify_audit).
	VerifyAudit(ctx context.Context, traceID string) (store.VerifyReport, error)
	// Envelopes returns a trace's envelopes, payloads re-projected.
	Envelopes(ctx context.Context, traceID string) ([]store.Envelope, error)
	// Tools lists the current version of every tool (list_tools).
	Tools(ctx context.Context) ([]store.ToolRecord, error)
	// Policy is the policy runs execute under (the policy resource).
	Policy(ctx context.Context) (PolicyView, error)
}

// PolicyView is the policy as the viewer shows it.
type PolicyView struct {
	// Policy is the policy's JSON, as the policy resource shows it.
	Policy json.RawMessage `json:"policy"`
	// Hash is its hash, recorded in every envelope.
	Hash string `json:"policy_hash"`
	// Permissive is true for the default policy (no policy file).
	Permissive bool `json:"permissive"`
	// Warnings are what the policy allows that is probably not meant.
	Warnings []string `json:"warnings,omitempty"`
}

// PolicyViewOf describes p.
func PolicyViewOf(p *runtime.Policy) (PolicyView, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return PolicyView{}, err
	}
	return PolicyView{Policy: b, Hash: p.Hash(), Permissive: p.Permissive(), Warnings: p.Warnings()}, nil
}

// Local is rt as a Source.
func Local(rt *runtime.Runtime) Source { return local{rt} }

type local struct{ *runtime.Runtime }

func (l local) Policy(context.Context) (PolicyView, error) { return PolicyViewOf(l.Runtime.Policy()) }

// Options configures Handler. The zero value (or nil) is usable.
type Options struct {
	// Logger receives the failures the API hides behind an incident id;
	// nil means slog.Default().
	Logger *slog.Logger
	// Version is shown in the page's header; "" shows none.
	Version string
	// Where says what the viewer reads, shown in the header, e.g. "HTTP
	// server" or a database path; "" shows none.
	Where string
}

//go:embed static
var staticFiles embed.FS

// Public reports whether a request is for one of the viewer's static
// files, which hold no data and are served without the token; every
// other /ui/ path (the API) needs it.
func Public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return (p == "/ui" || strings.HasPrefix(p, Prefix)) && !strings.HasPrefix(p, apiPrefix) && p+"/" != apiPrefix
}

// Handler serves the viewer under Prefix: its static files and its JSON
// API, read from src. The caller puts it behind auth (see the package
// doc).
func Handler(src Source, opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	a := &api{src: src, opts: o}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/{$}", http.StripPrefix("/ui", http.FileServerFS(sub)))
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static", http.FileServerFS(sub)))
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /ui/api/info", a.info)
	mux.HandleFunc("GET /ui/api/traces", a.traces)
	mux.HandleFunc("GET /ui/api/traces/{id}", a.trace)
	mux.HandleFunc("GET /ui/api/traces/{id}/steps/{index}", a.step)
	mux.HandleFunc("GET /ui/api/traces/{id}/audit", a.traceAudit)
	mux.HandleFunc("GET /ui/api/audit", a.audit)
	mux.HandleFunc("GET /ui/api/tools", a.tools)
	mux.HandleFunc("GET /ui/api/policy", a.policy)
	// Any other API path is answered in JSON too, as the page expects.
	unknown := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, runtime.CodeNotFound, "no API path "+store.Clip(r.URL.Path)+" (the viewer answers /ui/api/info, traces, traces/{id}, traces/{id}/steps/{index}, traces/{id}/audit, audit, tools and policy)")
	}
	mux.HandleFunc("GET /ui/api/", unknown)
	mux.HandleFunc("GET /ui/api", unknown)
	return &headers{mux}
}

// headers sets the security headers on every answer and refuses what a
// read-only viewer never answers.
type headers struct{ next http.Handler }

// csp allows this origin's scripts, styles, images and fetches only: no
// inline script or style, no plugin, no framing, no form posting away.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (h *headers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the viewer is read-only: "+r.Method+" is not answered")
		return
	}
	// A fetch another site's page makes is refused even when the guard
	// in front let its Origin through (defence in depth; browsers send
	// Sec-Fetch-Site on every request).
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		writeError(w, http.StatusForbidden, "cross_site", "the viewer answers its own pages only (Sec-Fetch-Site "+store.Clip(site)+")")
		return
	}
	if strings.HasPrefix(r.URL.Path, apiPrefix) {
		hd.Set("Cache-Control", "no-store")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	h.next.ServeHTTP(w, r)
}

// apiError is an API failure as the page shows it.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal","message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// errStatus maps a Source error to an HTTP status and the message the
// page shows: a runtime.Error's own message (not found, undecodable
// record), else an incident id, the details going to the log only.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := runtime.AsError(err); ok {
		status := http.StatusUnprocessableEntity
		switch e.Code {
		case runtime.CodeNotFound:
			status = http.StatusNotFound
		case runtime.CodeInvalidArgument:
			status = http.StatusBadRequest
		}
		writeError(w, status, e.Code, e.Message)
		return
	}
	if errors.Is(err, store.ErrInvalidID) {
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if errors.Is(err, store.ErrInvalidCursor) {
		badArg(w, "cursor: not a cursor this viewer issued; start again without one")
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	id := incident()
	a.opts.Logger.Error("viewer: request failed", "path", r.URL.Path, "incident", id, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "reading failed (incident "+id+"); the operator's log has the details")
}
