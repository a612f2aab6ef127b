package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// The idempotency commands list and clear stored idempotency keys: the way
// out of a key whose record is corrupt, which the server refuses
// (idempotency_record_corrupt) rather than risk running twice.

// openIdempotencyStore parses cmd's flags and opens the store alone: no
// tools, policy or vault are needed to read keys.
// A server holding the database is asked instead (see openAdmin).
func openIdempotencyStore(cmd *command, args []string, cio *cliIO) ([]string, idempotencyStore, error) {
	fs, c := newFlags(cmd, cio)
	pos, err := c.parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	r, dialErr := c.dialPrimary(context.Background())
	if r != nil {
		return pos, r, nil
	}
	if postgres.IsDSN(c.db) {
		db, err := postgres.Open(context.Background(), c.db, nil)
		if err != nil {
			return nil, nil, err
		}
		return pos, db, nil
	}
	db, err := store.Open(c.db, &store.Options{NoSync: c.noSync})
	if err != nil {
		return nil, nil, c.explainLocked(err, dialErr)
	}
	return pos, db, nil
}

// cmdIdempotencyLs is idempotency ls.
func cmdIdempotencyLs(cmd *command, args []string, cio *cliIO) error {
	pos, db, err := openIdempotencyStore(cmd, args, cio)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(pos) != 0 {
		return usagef("idempotency ls takes no arguments")
	}
	entries, err := db.IdempotencyEntries(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATUS\tTRACE\tEXPIRES")
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(tw, "%q\tCORRUPT\t-\t-\n", e.Key)
			continue
		}
		fmt.Fprintf(tw, "%q\t%s\t%s\t%s\n", e.Key, e.Record.Status, e.Record.TraceID, e.Record.ExpiresAt.Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

// cmdIdempotencyRm is idempotency rm KEY.
func cmdIdempotencyRm(cmd *command, args []string, cio *cliIO) error {
	pos, db, err := openIdempotencyStore(cmd, args, cio)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(pos) != 1 {
		return usagef("idempotency rm KEY")
	}
	found, err := db.DeleteIdempotencyKey(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("idempotency rm: no key %s", store.Clip(pos[0]))
	}
	fmt.Fprintf(cio.stdout, "removed idempotency key %s\n", store.Clip(pos[0]))
	return nil
}
