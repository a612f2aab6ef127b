package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// The administrative commands: tool (add in tooladd.go), audit verify,
// secret. trace is in trace.go, audit checkpoint and keygen in
// checkpoint.go. Each is one entry of commandTable.

// cmdToolLs lists the registered tools.
func cmdToolLs(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, true, 0, "tool ls takes no arguments", func(ctx context.Context, rt admin, pos []string) error {
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
	})
}

// cmdToolShow prints a tool's record.
func cmdToolShow(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, true, 1, "tool show NAME: want one tool name", func(ctx context.Context, rt admin, pos []string) error {
		rec, err := rt.Tool(ctx, pos[0])
		if err != nil {
			return err
		}
		return printJSON(cio.stdout, rec)
	})
}

// cmdToolRm removes a tool.
func cmdToolRm(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, true, 1, "tool rm NAME: want one tool name", func(ctx context.Context, rt admin, pos []string) error {
		if err := rt.RemoveToolLocal(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "removed %s (its versions stay in the audit trail)\n", pos[0])
		return nil
	})
}

// cmdAuditVerify verifies the envelope chain and the records it covers.
func cmdAuditVerify(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	traceID := fs.String("trace", "", "verify only this run's envelopes and their links")
	execID := fs.String("execution", "", "deprecated alias of --trace, accepted for one release")
	c.cp = &checkpointFlags{}
	c.cp.register(fs, false)
	fs.StringVar(&c.cp.check, "checkpoint", "", "also prove the chain extends this signed checkpoint file (see audit checkpoint)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("audit verify takes no arguments (one run is --trace TRACE_ID)")
	}
	if *execID != "" {
		fmt.Fprintln(cio.stderr, "nano-vm-mcp: --execution is deprecated and goes in the next release: use --trace")
		if *traceID != "" && *traceID != *execID {
			return usagef("--trace %q and --execution %q (its deprecated alias) differ: give only --trace", *traceID, *execID)
		}
		*traceID = *execID
	}
	if err := c.cp.resolve(false); err != nil {
		return err
	}
	if c.cp.check != "" && *traceID != "" {
		return usagef("--checkpoint covers the whole chain: drop --trace")
	}
	ctx := context.Background()
	c.noBundled = true
	rt, err := c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	if c.cp.check != "" {
		local, ok := rt.(*runtime.Runtime)
		if !ok {
			return fmt.Errorf("audit verify --checkpoint: %s is held by a running server, and checking a checkpoint through it is not supported: stop the server, or verify without --checkpoint", c.db)
		}
		return verifyCheckpointCmd(ctx, local, c.cp.check, cio)
	}
	rep, err := rt.VerifyAudit(ctx, *traceID)
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

// cmdSecretPut stores a secret. The value is read from stdin, never a
// flag, so it stays out of shell history and process listings.
func cmdSecretPut(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, false, 1, "secret put ID: want one secret id (the value is read from stdin)", func(ctx context.Context, rt admin, pos []string) error {
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
		return nil
	})
}

// cmdSecretErase destroys a secret's value.
func cmdSecretErase(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, false, 1, "secret erase ID: want one secret id", func(ctx context.Context, rt admin, pos []string) error {
		env, err := rt.EraseSecret(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "erased %s: value destroyed, ref tombstoned, recorded as envelope seq %d\n", pos[0], env.Seq)
		return nil
	})
}

// cmdSecretLs lists secrets without their values.
func cmdSecretLs(cmd *command, args []string, cio *cliIO) error {
	return withAdmin(cmd, args, cio, false, 0, "secret ls takes no arguments", func(ctx context.Context, rt admin, pos []string) error {
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
	})
}

// withAdmin runs an administrative command whose only flags are the
// shared ones: it parses them, refuses a count of positional arguments
// other than want with usage (before anything is opened), opens the
// runtime — beside a running server, through it — and runs fn.
func withAdmin(cmd *command, args []string, cio *cliIO, bundled bool, want int, usage string, fn func(ctx context.Context, rt admin, pos []string) error) error {
	fs, c := newFlags(cmd, cio)
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != want {
		return usagef("%s", usage)
	}
	if !bundled {
		c.noBundled = true
	}
	ctx := context.Background()
	rt, err := c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	return fn(ctx, rt, pos)
}
