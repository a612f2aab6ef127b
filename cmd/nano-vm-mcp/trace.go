package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// defaultStepLimit is how many steps run and trace show print at most.
const defaultStepLimit = 200

// cmdTraceLs lists runs, newest first.
func cmdTraceLs(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	status := fs.String("status", "", "only runs with this status: "+statusList())
	limit := fs.Int("limit", 20, fmt.Sprintf("how many runs, at most %d", store.MaxPageLimit))
	cursor := fs.String("cursor", "", "continue after a previous listing (the cursor it printed)")
	asJSON := fs.Bool("json", false, "print the page as JSON")
	ctx := context.Background()
	pos, rt, err := c.parseAndOpen(ctx, fs, args, false)
	if err != nil {
		return err
	}
	defer rt.Close()
	if len(pos) != 0 {
		return usagef("trace ls takes no arguments")
	}
	if *limit <= 0 {
		return usagef("--limit must be positive")
	}
	if *status != "" && !kernel.Status(*status).Valid() {
		return usagef("--status %q is not one of %s", *status, statusList())
	}
	page, err := rt.Traces(ctx, store.RunFilter{Status: kernel.Status(*status), Limit: *limit, Cursor: *cursor})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(cio.stdout, page)
	}
	tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACE\tPROGRAM\tSTATUS\tCREATED")
	for _, e := range page.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.ProgramName, e.Status, e.CreatedAt.Format("2006-01-02 15:04:05"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(cio.stdout, "… more: nano-vm-mcp trace ls --cursor %s\n", page.NextCursor)
	}
	return nil
}

// cmdTraceShow shows one run: the step table run prints, or JSON.
func cmdTraceShow(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	status := fs.String("status", "", "only steps with this status, e.g. failed or success")
	offset := fs.Int("offset", 0, "skip this many steps (of those --status keeps)")
	limit := fs.Int("limit", defaultStepLimit, "show at most this many steps")
	asJSON := fs.Bool("json", false, "print the trace as JSON (its steps paged by --offset and --limit)")
	ctx := context.Background()
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace show TRACE_ID: want one trace id (trace ls lists them)")
	}
	if *limit <= 0 || *offset < 0 {
		return usagef("--limit must be positive and --offset not negative")
	}
	c.noBundled = true
	rt, err := c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	tv, err := traceSteps(ctx, rt, pos[0], *status, *offset, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(cio.stdout, tv)
	}
	sum := traceSummary{
		program: tv.ProgramName, status: tv.Status, traceID: tv.TraceID, steps: tv.TotalSteps,
		finalOutput: tv.FinalOutput, errMsg: tv.Error, suspendedAt: tv.SuspendedStepID, filter: *status,
	}
	return printTrace(ctx, rt, cio.stdout, sum, tv)
}

// traceSteps reads a trace with the steps [offset, offset+limit) of those
// whose status is status ("" keeps all). TotalSteps stays the trace's
// total; Offset and NextOffset count the kept steps.
func traceSteps(ctx context.Context, rt traceReader, id, status string, offset, limit int) (*runtime.TraceView, error) {
	if status == "" {
		return rt.Trace(ctx, id, offset, limit)
	}
	head, err := rt.Trace(ctx, id, 0, 1)
	if err != nil {
		return nil, err
	}
	tv, err := rt.Trace(ctx, id, 0, max(head.TotalSteps, 1))
	if err != nil {
		return nil, err
	}
	var kept []kernel.StepRecord
	for _, s := range tv.Steps {
		if strings.EqualFold(string(s.Status), status) {
			kept = append(kept, s)
		}
	}
	start := min(offset, len(kept))
	end := min(start+limit, len(kept))
	tv.Steps, tv.Offset, tv.NextOffset = kept[start:end], start, nil
	if end < len(kept) {
		next := end
		tv.NextOffset = &next
	}
	return tv, nil
}

// traceSummary is the head and tail of the step table: what a run
// returned, or what a stored trace holds.
type traceSummary struct {
	program, traceID    string
	status              kernel.Status
	steps               int
	storedOutcome       bool
	finalOutput         any
	errMsg, suspendedAt string
	warnings            []string
	// filter is trace show's --status, for the "more" hint.
	filter string
}

// printTrace prints the readable view of a run that run, resume and trace
// show share: a header, one line a step, the final output, how to go on,
// and the audit check of its envelopes.
func printTrace(ctx context.Context, rt traceReader, w io.Writer, sum traceSummary, tv *runtime.TraceView) error {
	fmt.Fprintf(w, "%s  %s  %d step(s)  %.1f ms  trace %s\n", sum.program, strings.ToUpper(string(sum.status)), sum.steps, tv.DurationMS, sum.traceID)
	if sum.storedOutcome {
		fmt.Fprintln(w, "  (idempotency key: stored outcome returned, nothing ran)")
	}
	for _, warn := range sum.warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	if sum.filter != "" {
		fmt.Fprintf(w, "  steps with status %s:\n", sum.filter)
	}
	for _, s := range tv.Steps {
		out, _ := json.Marshal(s.Output)
		line := fmt.Sprintf("  #%-3d %-16s %-9s %-8s %7.2f ms  %s", s.Index, s.StepID, s.Type, s.Status, s.DurationMS, clip(string(out), 60))
		if s.Error != "" {
			line += "  error: " + clip(s.Error, 80)
		}
		fmt.Fprintln(w, line)
	}
	if tv.NextOffset != nil {
		hint := fmt.Sprintf("nano-vm-mcp trace show %s --offset %d", sum.traceID, *tv.NextOffset)
		if sum.filter != "" {
			hint += " --status " + sum.filter
		}
		fmt.Fprintf(w, "  … more step(s): %s\n", hint)
	}
	out, _ := json.Marshal(sum.finalOutput)
	fmt.Fprintf(w, "final output: %s\n", clip(string(out), 200))
	if sum.errMsg != "" {
		fmt.Fprintf(w, "error: %s\n", sum.errMsg)
	}
	if sum.suspendedAt != "" && sum.status == kernel.StatusSuspended {
		fmt.Fprintf(w, "suspended at %q: nano-vm-mcp resume %s --payload '{...}'\n", sum.suspendedAt, sum.traceID)
	}
	rep, err := rt.VerifyAudit(ctx, sum.traceID)
	if err != nil {
		return err
	}
	switch {
	case rep.OK:
		fmt.Fprintf(w, "audit: %d envelope(s), chain verified\n", rep.Checked)
	case rep.Broken != nil:
		fmt.Fprintf(w, "audit: BROKEN at seq %d: %s\n", rep.Broken.Seq, rep.Broken.Reason)
	case len(rep.Records) > 0:
		fmt.Fprintf(w, "audit: RECORD DOES NOT MATCH: %s\n", rep.Records[0])
	default:
		fmt.Fprintln(w, "audit: does not verify")
	}
	return nil
}

// statusList is the kernel's run statuses, for help texts and refusals.
func statusList() string {
	var names []string
	for _, st := range kernel.Statuses() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}
