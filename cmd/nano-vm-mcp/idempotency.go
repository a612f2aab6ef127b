package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/nanovm/nano-vm-mcp/store"
)

// cmdIdempotency lists and clears stored idempotency keys: the way out of
// a key whose record is corrupt, which the server refuses
// (idempotency_record_corrupt) rather than risk running twice.
func cmdIdempotency(args []string, cio *cliIO) error {
	verb, args, err := subcommand(args, "ls", "rm")
	if err != nil {
		return err
	}
	fs, c := newFlags("idempotency "+verb, cio)
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	// The store alone: no tools, policy or vault are needed to read keys.
	db, err := store.Open(c.db, &store.Options{NoSync: c.noSync})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w; stop the server using it first", err)
		}
		return err
	}
	defer db.Close()
	ctx := context.Background()
	switch verb {
	case "ls":
		if len(pos) != 0 {
			return usagef("idempotency ls takes no arguments")
		}
		entries, err := db.IdempotencyEntries(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSTATUS\tEXECUTION\tEXPIRES")
		for _, e := range entries {
			if e.Err != nil {
				fmt.Fprintf(tw, "%q\tCORRUPT\t-\t-\n", e.Key)
				continue
			}
			fmt.Fprintf(tw, "%q\t%s\t%s\t%s\n", e.Key, e.Record.Status, e.Record.ExecutionID, e.Record.ExpiresAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "rm":
		if len(pos) != 1 {
			return usagef("idempotency rm KEY")
		}
		found, err := db.DeleteIdempotencyKey(ctx, pos[0])
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("idempotency rm: no key %s", store.Clip(pos[0]))
		}
		fmt.Fprintf(cio.stdout, "removed idempotency key %s\n", store.Clip(pos[0]))
	}
	return nil
}
