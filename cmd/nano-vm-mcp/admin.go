package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/nanovm/nano-vm-mcp/store"
)

// subcommand splits "tool add …" into its verb and arguments.
func subcommand(args []string, verbs ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usagef("want one of: %s", strings.Join(verbs, ", "))
	}
	for _, v := range verbs {
		if args[0] == v {
			return v, args[1:], nil
		}
	}
	return "", nil, usagef("unknown subcommand %q; want one of: %s", args[0], strings.Join(verbs, ", "))
}

// cmdTool manages registered tools.
func cmdTool(args []string, cio *cliIO) error {
	if len(args) > 0 && args[0] == "new" { // toolnew.go: writes files, opens no database
		return cmdToolNew(args[1:], cio)
	}
	verb, args, err := subcommand(args, "add", "ls", "show", "rm")
	if err != nil {
		return err
	}
	fs, c := newFlags("tool "+verb, cio)
	ctx := context.Background()
	pos, rt, err := c.parseAndOpen(ctx, fs, args, cio, true)
	if err != nil {
		return err
	}
	defer rt.Close()
	switch verb {
	case "add":
		var manifestPath, wasmPath string
		switch len(pos) {
		case 1: // a folder: manifest.json and <folder name>.wasm
			manifestPath = filepath.Join(pos[0], "manifest.json")
			wasmPath = filepath.Join(pos[0], filepath.Base(filepath.Clean(pos[0]))+".wasm")
		case 2:
			manifestPath, wasmPath = pos[0], pos[1]
		default:
			return usagef("tool add DIR, or tool add MANIFEST.json MODULE.wasm")
		}
		manifest, err := os.ReadFile(manifestPath)
		if err != nil {
			return err
		}
		wasm, err := os.ReadFile(wasmPath)
		if err != nil {
			return err
		}
		rec, err := rt.RegisterToolLocal(ctx, manifest, wasm)
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "registered %s@sha256:%s\n", rec.Name, rec.ModuleSHA256)
	case "ls":
		recs, err := rt.Tools(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tMODULE\tREGISTERED")
		for _, r := range recs {
			fmt.Fprintf(tw, "%s\tsha256:%s\t%s\n", r.Name, r.ModuleSHA256[:16], r.RegisteredAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "show":
		if len(pos) != 1 {
			return usagef("tool show NAME")
		}
		rec, err := rt.Tool(ctx, pos[0])
		if err != nil {
			return err
		}
		return printJSON(cio.stdout, rec)
	case "rm":
		if len(pos) != 1 {
			return usagef("tool rm NAME")
		}
		if err := rt.RemoveToolLocal(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "removed %s (its versions stay in the audit trail)\n", pos[0])
	}
	return nil
}

// cmdTrace lists and shows traces.
func cmdTrace(args []string, cio *cliIO) error {
	verb, args, err := subcommand(args, "ls", "show")
	if err != nil {
		return err
	}
	fs, c := newFlags("trace "+verb, cio)
	status := fs.String("status", "", "only traces with this status")
	limit := fs.Int("limit", 20, "how many")
	asJSON := fs.Bool("json", false, "print JSON")
	ctx := context.Background()
	pos, rt, err := c.parseAndOpen(ctx, fs, args, cio, false)
	if err != nil {
		return err
	}
	defer rt.Close()
	switch verb {
	case "ls":
		page, err := rt.Traces(ctx, store.ExecutionFilter{Status: *status, Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(cio.stdout, page)
		}
		tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TRACE\tPROGRAM\tSTATUS\tCREATED")
		for _, e := range page.Executions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.ProgramName, e.Status, e.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "show":
		if len(pos) != 1 {
			return usagef("trace show TRACE_ID")
		}
		tv, err := rt.Trace(ctx, pos[0], 0, 10000)
		if err != nil {
			return err
		}
		return printJSON(cio.stdout, tv)
	}
	return nil
}

// cmdAudit verifies the envelope chain (audit verify), signs its head
// (audit checkpoint) and makes checkpoint keys (audit keygen).
func cmdAudit(args []string, cio *cliIO) error {
	verb, rest, err := subcommand(args, "verify", "checkpoint", "keygen")
	if err != nil {
		return err
	}
	switch verb {
	case "checkpoint":
		return cmdAuditCheckpoint(rest, cio)
	case "keygen":
		return cmdAuditKeygen(rest, cio)
	}
	args = rest
	fs, c := newFlags("audit verify", cio)
	execID := fs.String("execution", "", "verify only this execution's envelopes and their links")
	c.cp = &checkpointFlags{}
	c.cp.register(fs, false)
	fs.StringVar(&c.cp.check, "checkpoint", "", "also prove the chain extends this signed checkpoint file (see audit checkpoint)")
	if _, err := c.parse(fs, args); err != nil {
		return err
	}
	if err := c.cp.resolve(false); err != nil {
		return err
	}
	if c.cp.check != "" && *execID != "" {
		return usagef("--checkpoint covers the whole chain: drop --execution")
	}
	ctx := context.Background()
	rt, err := c.openAdmin(ctx, cio, false)
	if err != nil {
		return err
	}
	defer rt.Close()
	if c.cp.check != "" {
		return verifyCheckpointCmd(ctx, rt, c.cp.check, cio)
	}
	rep, err := rt.VerifyAudit(ctx, *execID)
	if err != nil {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(cio.stdout, "note: %s\n", n)
	}
	for _, p := range rep.Records {
		fmt.Fprintf(cio.stdout, "RECORD DOES NOT MATCH: %s\n", p)
	}
	if rep.Broken != nil {
		return fmt.Errorf("audit chain BROKEN at seq %d (%s): %s; %d envelope(s) checked before it", rep.Broken.Seq, rep.Broken.Problem, rep.Broken.Reason, rep.Checked)
	}
	if n := len(rep.Records) + rep.RecordsOmitted; n > 0 || !rep.OK {
		return fmt.Errorf("audit FAILED: %d stored record(s) do not match their envelopes (chain intact, %d envelope(s)); first: %s", n, rep.Checked, firstRecord(rep))
	}
	fmt.Fprintf(cio.stdout, "audit chain verified: %d envelope(s), %d record(s)", rep.Checked, rep.RecordsChecked)
	if rep.HeadSeq > 0 {
		fmt.Fprintf(cio.stdout, ", head seq %d hash %s", rep.HeadSeq, rep.HeadHash)
	}
	fmt.Fprintln(cio.stdout)
	return nil
}

func firstRecord(rep store.VerifyReport) string {
	if len(rep.Records) == 0 {
		return "none listed"
	}
	return rep.Records[0].String()
}

// cmdSecret stores and erases secrets. A value is read from stdin, never a
// flag, so it stays out of shell history and process listings.
func cmdSecret(args []string, cio *cliIO) error {
	verb, args, err := subcommand(args, "put", "erase", "ls")
	if err != nil {
		return err
	}
	fs, c := newFlags("secret "+verb, cio)
	ctx := context.Background()
	pos, rt, err := c.parseAndOpen(ctx, fs, args, cio, false)
	if err != nil {
		return err
	}
	defer rt.Close()
	switch verb {
	case "put":
		if len(pos) != 1 {
			return usagef("secret put ID (the value is read from stdin)")
		}
		b, err := io.ReadAll(io.LimitReader(cio.stdin, 1<<20))
		if err != nil {
			return err
		}
		value := strings.TrimRight(string(b), "\r\n")
		if value == "" {
			return errors.New("secret put: empty value on stdin")
		}
		ref, err := rt.PutSecret(ctx, pos[0], value)
		if err != nil {
			return err
		}
		fmt.Fprintln(cio.stdout, ref)
	case "erase":
		if len(pos) != 1 {
			return usagef("secret erase ID")
		}
		env, err := rt.EraseSecret(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "erased %s: value destroyed, ref tombstoned, recorded as envelope seq %d\n", pos[0], env.Seq)
	case "ls":
		recs, err := rt.Secrets(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REF\tSTATE\tCREATED")
		for _, r := range recs {
			state := "stored"
			if r.Tombstoned {
				state = "erased " + r.ErasedAt.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", store.RefFor(r.ID), state, r.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	}
	return nil
}
