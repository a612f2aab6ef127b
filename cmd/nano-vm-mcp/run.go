package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
)

// cmdRun runs a program file and prints a readable summary of its trace.
func cmdRun(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	input := fs.String("input", "", "the run's input: a JSON object inline or a file")
	key := fs.String("idempotency-key", "", "run at most once per key; a repeat returns the stored outcome")
	saveAs := fs.String("save-as", "", "save the program under this id")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	strict := fs.Bool("strict", false, "refuse the program, before anything runs, when it has validation warnings (a $reference that matches nothing, an unreachable step)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("run needs exactly one program file, got %d arguments", len(pos))
	}
	req := runtime.RunRequest{IdempotencyKey: *key, SaveAs: *saveAs, Strict: *strict}
	if *input != "" {
		v, err := jsonArg(*input)
		if err != nil {
			return usagef("--input: %v", err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return usagef("--input must be a JSON object")
		}
		req.Input = m
	}
	prog, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read program: %w", err)
	}
	req.Program = prog
	ctx, rt, done, err := c.openUntilSignal()
	if err != nil {
		return err
	}
	defer done()
	bar := newProgressBar(cio.stderr, *asJSON)
	req.Progress = bar.update
	res, err := rt.RunProgram(ctx, req)
	bar.done()
	if err != nil {
		if res != nil {
			return fmt.Errorf("%w\ncontinue it with: nano-vm-mcp run %s --idempotency-key %q (or resume %s)", err, pos[0], *key, res.TraceID)
		}
		return err
	}
	if !*asJSON {
		// With --json they are the result's "warnings".
		for _, w := range res.Warnings {
			fmt.Fprintf(cio.stderr, "warning: %s\n", w)
		}
	}
	return report(ctx, rt, res, *asJSON, cio.stdout)
}

// cmdResume resumes a suspended run (or continues an interrupted one).
func cmdResume(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	payload := fs.String("payload", "", "the event's payload: JSON inline or a file")
	source := fs.String("source", "OPERATOR", "WEBHOOK, OPERATOR or TIMER")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("resume needs one trace id (trace ls lists them)")
	}
	var p any
	if *payload != "" {
		if p, err = jsonArg(*payload); err != nil {
			return usagef("--payload: %v", err)
		}
	}
	ctx, rt, done, err := c.openUntilSignal()
	if err != nil {
		return err
	}
	defer done()
	bar := newProgressBar(cio.stderr, *asJSON)
	var res *runtime.RunResult
	tv, err := rt.Trace(ctx, pos[0], 0, 1)
	if err != nil {
		return err
	}
	if tv.Status == kernel.StatusRunning {
		res, err = rt.ContinueInterrupted(ctx, pos[0], bar.update)
	} else {
		res, err = rt.Resume(ctx, pos[0], p, strings.ToUpper(*source), bar.update)
	}
	bar.done()
	if err != nil {
		return err
	}
	return report(ctx, rt, res, *asJSON, cio.stdout)
}

// report prints a run's result: JSON, or the table of its steps (see
// printTrace).
func report(ctx context.Context, rt traceReader, res *runtime.RunResult, asJSON bool, w io.Writer) error {
	if asJSON {
		if err := printJSON(w, res); err != nil {
			return err
		}
	} else {
		tv, err := rt.Trace(ctx, res.TraceID, 0, defaultStepLimit)
		if err != nil {
			return err
		}
		sum := traceSummary{
			program: res.ProgramName, status: res.Status, traceID: res.TraceID, steps: res.Steps, storedOutcome: res.StoredOutcome,
			finalOutput: res.FinalOutput, errMsg: res.Error, suspendedAt: res.SuspendedStepID, warnings: res.Warnings,
		}
		if err := printTrace(ctx, rt, w, sum, tv); err != nil {
			return err
		}
	}
	if res.Status != kernel.StatusSuccess && res.Status != kernel.StatusSuspended {
		return runFailed{status: res.Status, msg: res.Error}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// progressBar draws a one-line progress bar on a terminal; elsewhere it is
// silent, so pipes and logs stay clean.
type progressBar struct {
	w   io.Writer
	on  bool
	any bool
}

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	f, ok := w.(*os.File)
	on := false
	if ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progressBar{w: w, on: on}
}

func (b *progressBar) update(p runtime.Progress) {
	if !b.on {
		return
	}
	b.any = true
	total := max(p.Total, p.Done)
	const width = 24
	filled := width * p.Done / max(total, 1)
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d %-20s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, total, clip(p.StepID+" "+string(p.Status), 20))
}

func (b *progressBar) done() {
	if b.on && b.any {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
