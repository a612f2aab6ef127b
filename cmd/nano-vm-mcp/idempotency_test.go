package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Ensure a corrupt idempotency record is a clear error over MCP naming the
// key and the operator's command, that `idempotency ls` shows it and
// `idempotency rm` clears it, after which the key runs again.
func TestCorruptIdempotencyRecord(t *testing.T) {
	db := filepath.Join(t.TempDir(), "idem.db")
	prog := `{"name":"p","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1}}]}`
	p := startRawStdio(t, db)
	if out, isErr := p.callRaw(1, "run_program", map[string]any{"program": prog, "idempotency_key": "order-42"}); isErr || out["status"] != "success" {
		t.Fatalf("first run: %v", out)
	}
	p.in.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v\n%s", err, p.stderr)
	}

	bdb, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("idempotency")).Put([]byte("order-42"), []byte(`{"key":"order-42","request_hash":`))
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()

	p = startRawStdio(t, db)
	out, isErr := p.callRaw(2, "run_program", map[string]any{"program": prog, "idempotency_key": "order-42"})
	msg := fmt.Sprint(out["message"])
	if !isErr || out["error"] != "idempotency_record_corrupt" || !strings.Contains(msg, `"order-42"`) || !strings.Contains(msg, "idempotency rm") {
		t.Fatalf("run with the corrupt key: %v", out)
	}
	// Other keys still work.
	if out, isErr := p.callRaw(3, "run_program", map[string]any{"program": prog, "idempotency_key": "order-43"}); isErr || out["status"] != "success" {
		t.Fatalf("another key: %v", out)
	}
	p.in.Close()
	p.cmd.Wait()

	code, stdout, stderr := runCLI(t, "", "idempotency", "ls", "--db", db)
	if code != 0 || !strings.Contains(stdout, `"order-42"  CORRUPT`) || !strings.Contains(stdout, `"order-43"`) {
		t.Fatalf("idempotency ls: %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, "", "idempotency", "rm", "order-42", "--db", db); code != 0 {
		t.Fatalf("idempotency rm: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, "", "idempotency", "rm", "order-42", "--db", db); code == 0 {
		t.Fatal("idempotency rm of a missing key succeeded")
	}

	p = startRawStdio(t, db)
	if out, isErr := p.callRaw(4, "run_program", map[string]any{"program": prog, "idempotency_key": "order-42"}); isErr || out["status"] != "success" {
		t.Fatalf("run after rm: %v", out)
	}
}
