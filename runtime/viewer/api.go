package viewer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// api answers /ui/api/…: each handler checks its arguments, makes one
// Source call (two for a step: its record and its envelope) and shapes
// the answer for the page.
type api struct {
	src  Source
	opts Options
}

func incident() string {
	var b [6]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return hex.EncodeToString(b[:])
}

func badArg(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, runtime.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

// clipText cuts s to n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ---- info ----

type infoDoc struct {
	Version    string `json:"version,omitempty"`
	Where      string `json:"where,omitempty"`
	PolicyHash string `json:"policy_hash"`
	Permissive bool   `json:"permissive"`
}

// info is what the page's header shows; the page also calls it to learn
// whether its token is accepted.
func (a *api) info(w http.ResponseWriter, r *http.Request) {
	p, err := a.src.Policy(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, infoDoc{Version: a.opts.Version, Where: a.opts.Where, PolicyHash: p.Hash, Permissive: p.Permissive})
}

// ---- runs ----

type runList struct {
	Traces     []runtime.RunSummary  `json:"traces"`
	NextCursor string                `json:"next_cursor,omitempty"`
	Scanned    int                   `json:"scanned"`
	Skipped    []store.SkippedRecord `json:"skipped,omitempty"`
}

// parseTime reads a filter's time: RFC 3339, or the "2006-01-02T15:04"
// of an <input type=datetime-local> (UTC), or a bare date.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2026-12-01T09:30:00Z")
}

// traces lists runs newest first. status is the store's filter; program
// (a saved program's id, or part of a program's name, any case) and the
// since/until window are applied here to the pages the store returns,
// reading at most MaxScan runs per request.
func (a *api) traces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxRunsPage {
			badArg(w, "limit %s: want 1 to %d", store.Clip(v), MaxRunsPage)
			return
		}
		limit = n
	}
	status := kernel.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		var all []string
		for _, s := range kernel.Statuses() {
			all = append(all, string(s))
		}
		badArg(w, "status %s: want one of %s", store.Clip(string(status)), strings.Join(all, ", "))
		return
	}
	cursor := q.Get("cursor")
	if cursor != "" && (len(cursor) > 4*store.MaxIDBytes || strings.Trim(cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "") {
		badArg(w, "cursor: not a cursor this viewer issued; start again without one")
		return
	}
	program := strings.TrimSpace(q.Get("program"))
	if len(program) > store.MaxIDBytes {
		badArg(w, "program: %d bytes, over the %d-byte limit", len(program), store.MaxIDBytes)
		return
	}
	var since, until time.Time
	for _, t := range []struct {
		name string
		p    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(t.name); v != "" {
			var err error
			if *t.p, err = parseTime(v); err != nil {
				badArg(w, "%s %s: %v", t.name, store.Clip(v), err)
				return
			}
		}
	}
	filtered := program != "" || !since.IsZero() || !until.IsZero()
	lowProgram := strings.ToLower(program)
	match := func(e store.Run) bool {
		if program != "" && e.ProgramID != program && !strings.Contains(strings.ToLower(e.ProgramName), lowProgram) {
			return false
		}
		if !until.IsZero() && e.CreatedAt.After(until) {
			return false
		}
		return since.IsZero() || !e.CreatedAt.Before(since)
	}
	out := runList{Traces: []runtime.RunSummary{}}
	clip := func(s string) string { return clipText(s, maxNameBytes) }
	for {
		// Ask for no more than are still wanted, so that a page is always
		// read whole and its cursor is where this answer stops.
		want := limit - len(out.Traces)
		if filtered {
			want = min(max(want, 1), MaxScan-out.Scanned)
		}
		page, err := a.src.Traces(r.Context(), store.RunFilter{Status: status, Limit: want, Cursor: cursor})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out.Scanned += len(page.Runs) + len(page.Skipped)
		out.Skipped = append(out.Skipped, page.Skipped...)
		older := false // past since: nothing further can match
		for _, e := range page.Runs {
			if !since.IsZero() && e.CreatedAt.Before(since) {
				older = true
			}
			if match(e) {
				out.Traces = append(out.Traces, runtime.SummariseRun(e, clip))
			}
		}
		cursor = page.NextCursor
		if older {
			cursor = ""
		}
		if cursor == "" || !filtered || len(out.Traces) >= limit || out.Scanned >= MaxScan {
			break
		}
	}
	out.NextCursor = cursor
	writeJSON(w, http.StatusOK, out)
}

// ---- one run ----

// stepSummary is one step record as the timeline needs it: no output,
// times in milliseconds from the run's start.
type stepSummary struct {
	Index       int          `json:"index"`
	StepID      string       `json:"step_id"`
	Type        string       `json:"type"`
	Kind        string       `json:"kind,omitempty"`
	Status      string       `json:"status"`
	StartMS     float64      `json:"start_ms"`
	EndMS       float64      `json:"end_ms"`
	Retries     int          `json:"retries,omitempty"`
	Error       string       `json:"error,omitempty"`
	TimedOut    bool         `json:"timed_out,omitempty"`
	Source      string       `json:"source,omitempty"`
	OutputBytes int          `json:"output_bytes"`
	SubSteps    []subSummary `json:"sub_steps,omitempty"`
}

type subSummary struct {
	StepID  string  `json:"step_id"`
	Type    string  `json:"type"`
	Status  string  `json:"status"`
	StartMS float64 `json:"start_ms"`
	EndMS   float64 `json:"end_ms"`
	Error   string  `json:"error,omitempty"`
}

type runDoc struct {
	runtime.TraceHeader
	// Now is the server's clock, for the time a run still running or
	// suspended has spent so far.
	Now   time.Time     `json:"now"`
	Steps []stepSummary `json:"steps"`
}

func ms(t, from time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Sub(from).Microseconds()) / 1000
}

func outputBytes(v any) int {
	if v == nil {
		return 0
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// traceID reads and checks the {id} path value.
func traceID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := store.CheckID("trace", id); err != nil {
		badArg(w, "%s", strings.TrimPrefix(err.Error(), store.ErrInvalidID.Error()+": "))
		return "", false
	}
	return id, true
}

func intParam(w http.ResponseWriter, name, v string, def, lo, hi int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		badArg(w, "%s %s: want an integer from %d to %d", name, store.Clip(v), lo, hi)
		return 0, false
	}
	return n, true
}

// trace is one run: its header and the summaries of up to MaxStepsPage
// steps from offset (default all of a run up to that size, in one
// answer).
func (a *api) trace(w http.ResponseWriter, r *http.Request) {
	id, ok := traceID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	offset, ok := intParam(w, "offset", q.Get("offset"), 0, 0, 1<<30)
	if !ok {
		return
	}
	limit, ok := intParam(w, "limit", q.Get("limit"), MaxStepsPage, 1, MaxStepsPage)
	if !ok {
		return
	}
	tv, err := a.src.Trace(r.Context(), id, offset, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t0 := tv.StartedAt
	doc := runDoc{TraceHeader: tv.Header(), Now: time.Now().UTC(), Steps: make([]stepSummary, len(tv.Steps))}
	doc.ProgramID, doc.ProgramName = clipText(doc.ProgramID, maxNameBytes), clipText(doc.ProgramName, maxNameBytes)
	doc.Error, doc.SuspendedStepID = clipText(doc.Error, 2_000), clipText(doc.SuspendedStepID, maxNameBytes)
	for i, s := range tv.Steps {
		sum := stepSummary{
			Index: s.Index, StepID: clipText(s.StepID, maxNameBytes), Type: string(s.Type), Kind: string(s.Kind), Status: string(s.Status),
			StartMS: ms(s.StartedAt, t0), EndMS: ms(s.FinishedAt, t0), Retries: s.Retries, Error: clipText(s.Error, maxNameBytes),
			TimedOut: s.TimedOut, Source: clipText(s.Source, 40), OutputBytes: outputBytes(s.Output),
		}
		for _, sub := range s.SubSteps {
			sum.SubSteps = append(sum.SubSteps, subSummary{
				StepID: clipText(sub.StepID, maxNameBytes), Type: string(sub.Type), Status: string(sub.Status),
				StartMS: ms(sub.StartedAt, t0), EndMS: ms(sub.FinishedAt, t0), Error: clipText(sub.Error, maxNameBytes),
			})
		}
		doc.Steps[i] = sum
	}
	writeJSON(w, http.StatusOK, doc)
}

// clipped is a value too large to show whole.
type clipped struct {
	Truncated bool   `json:"truncated"`
	Bytes     int    `json:"bytes"`
	Preview   string `json:"preview"`
}

// clipValue returns v, or a clipped preview of its JSON when that is over
// n bytes.
func clipValue(v any, n int) any {
	b, err := json.Marshal(v)
	if err != nil || len(b) <= n {
		return v
	}
	return clipped{Truncated: true, Bytes: len(b), Preview: clipText(string(b), n)}
}

func clipRecord(s *kernel.StepRecord) {
	s.Output = clipValue(s.Output, MaxOutputBytes)
	s.Log = clipText(s.Log, MaxOutputBytes/4)
	if s.RawOutput != nil {
		raw := clipText(*s.RawOutput, MaxOutputBytes/4)
		s.RawOutput = &raw
	}
	for j := range s.SubSteps {
		sub := &s.SubSteps[j]
		sub.Output = clipValue(sub.Output, MaxOutputBytes/4)
		sub.Log = clipText(sub.Log, MaxOutputBytes/16)
		if sub.RawOutput != nil {
			raw := clipText(*sub.RawOutput, MaxOutputBytes/16)
			sub.RawOutput = &raw
		}
	}
}

type stepDoc struct {
	TraceID string            `json:"trace_id"`
	Step    kernel.StepRecord `json:"step"`
	// Envelope is the audit envelope the step left; nil for a record that
	// left none (a failed step, a run written before envelopes).
	Envelope *store.Envelope `json:"envelope"`
}

// step is one step record, output included, with its envelope.
func (a *api) step(w http.ResponseWriter, r *http.Request) {
	id, ok := traceID(w, r)
	if !ok {
		return
	}
	index, ok := intParam(w, "step index", r.PathValue("index"), 0, 0, 1<<30)
	if !ok {
		return
	}
	tv, err := a.src.Trace(r.Context(), id, index, 1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(tv.Steps) == 0 {
		writeError(w, http.StatusNotFound, runtime.CodeNotFound, fmt.Sprintf("trace %s has %d step records: there is no index %d", id, tv.TotalSteps, index))
		return
	}
	doc := stepDoc{TraceID: id, Step: tv.Steps[0]}
	clipRecord(&doc.Step)
	if doc.Envelope, err = a.stepEnvelope(r, id, index); err != nil {
		a.fail(w, r, err)
		return
	}
	if e := doc.Envelope; e != nil {
		e.Payload = json.RawMessage(mustJSON(clipValue(e.Payload, MaxOutputBytes)))
	}
	writeJSON(w, http.StatusOK, doc)
}

// StepEnvelopeSource is a Source that finds one step's envelope (the first
// step envelope of the run with that index, nil when none) without
// sending every envelope of the run: *runtime.Runtime has it. The step
// view uses it when the Source has it, else Envelopes.
type StepEnvelopeSource interface {
	StepEnvelope(ctx context.Context, traceID string, index int) (*store.Envelope, error)
}

// stepEnvelope is the envelope the step view shows.
func (a *api) stepEnvelope(r *http.Request, id string, index int) (*store.Envelope, error) {
	if se, ok := a.src.(StepEnvelopeSource); ok {
		return se.StepEnvelope(r.Context(), id, index)
	}
	envs, err := a.src.Envelopes(r.Context(), id)
	if err != nil {
		return nil, err
	}
	for i := range envs {
		if e := &envs[i]; e.StepIndex == index && e.Kind == store.EnvelopeKindStep {
			return e, nil
		}
	}
	return nil, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

// ---- audit ----

type auditDoc struct {
	store.VerifyReport
	// Scope is "chain" or "trace <id>".
	Scope string `json:"scope"`
}

func (a *api) audit(w http.ResponseWriter, r *http.Request) {
	rep, err := a.src.VerifyAudit(r.Context(), "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, auditDoc{VerifyReport: rep, Scope: "chain"})
}

func (a *api) traceAudit(w http.ResponseWriter, r *http.Request) {
	id, ok := traceID(w, r)
	if !ok {
		return
	}
	rep, err := a.src.VerifyAudit(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rep.Checked == 0 {
		// An unknown id verifies vacuously; say so instead (as
		// verify_audit does).
		if _, err := a.src.Trace(r.Context(), id, 0, 1); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, auditDoc{VerifyReport: rep, Scope: "trace " + id})
}

// ---- tools and policy ----

func (a *api) tools(w http.ResponseWriter, r *http.Request) {
	recs, err := a.src.Tools(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	out := struct {
		Tools []runtime.ToolSummary `json:"tools"`
	}{Tools: make([]runtime.ToolSummary, 0, len(recs))}
	for _, rec := range recs {
		t := runtime.SummariseTool(rec)
		t.Version, t.Description = clipText(t.Version, 64), clipText(t.Description, 300)
		out.Tools = append(out.Tools, t)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) policy(w http.ResponseWriter, r *http.Request) {
	p, err := a.src.Policy(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
