package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/storetest"
	bolt "go.etcd.io/bbolt"
)

// TestOpenBadFiles ensures a file that is not a store, or is damaged, or
// was written by a newer schema, is a clear error and never a panic.
func TestOpenBadFiles(t *testing.T) {
	dir := t.TempDir()
	// A real store with enough data that truncation cuts into its pages.
	good := filepath.Join(dir, "good.db")
	db := openAt(t, good, nil)
	big := bytes.Repeat([]byte("module "), 200_000)
	rec := store.ToolRecord{Name: "big", ModuleSHA256: sha(big)}
	if err := db.PutToolVersion(context.Background(), rec, big); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := db.AppendEnvelope(context.Background(), store.Envelope{StepIndex: i, Payload: []byte(`{"x":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	goodBytes := store.FileAfterClose(t, db)

	random := make([]byte, 64<<10)
	_, _ = io.ReadFull(rand.Reader, random)

	tests := []struct {
		name    string
		write   func(path string) error
		wantErr error
		wantMsg string
	}{
		{name: "random bytes", write: writeBytes(random), wantErr: store.ErrCorrupt},
		{name: "tiny file", write: writeBytes([]byte("hello")), wantErr: store.ErrCorrupt},
		{name: "text file", write: writeBytes(bytes.Repeat([]byte("not a database\n"), 1000)), wantErr: store.ErrCorrupt},
		{name: "truncated to half", write: writeBytes(goodBytes[:len(goodBytes)/2]), wantErr: store.ErrCorrupt, wantMsg: "truncated"},
		{name: "truncated after meta pages", write: writeBytes(goodBytes[:3*4096]), wantErr: store.ErrCorrupt},
		{name: "meta pages zeroed", write: writeBytes(append(make([]byte, 2*4096), goodBytes[2*4096:]...)), wantErr: store.ErrCorrupt},
		{name: "data pages zeroed", write: writeBytes(append(bytes.Clone(goodBytes[:2*4096]), make([]byte, len(goodBytes)-2*4096)...)), wantErr: store.ErrCorrupt},
		{name: "unsynced freelist and data pages zeroed", write: func(path string) error {
			b, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
			if err != nil {
				return err
			}
			if err := b.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucket([]byte("meta"))
				if err != nil {
					return err
				}
				for i := range 2000 {
					if err := bk.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), bytes.Repeat([]byte("v"), 100)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if err := b.Close(); err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			clear(data[2*4096:])
			return os.WriteFile(path, data, 0o600)
		}, wantErr: store.ErrCorrupt},
		{name: "bbolt file of another program", write: func(path string) error {
			b, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				return err
			}
			if err := b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
				return err
			}
			return b.Close()
		}, wantErr: store.ErrCorrupt, wantMsg: "not a nano-vm-mcp store"},
		{name: "newer schema", write: func(path string) error {
			if err := writeBytes(goodBytes)(path); err != nil {
				return err
			}
			return rawUpdate(path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, store.SchemaVersion+1))
			})
		}, wantErr: store.ErrSchemaTooNew, wantMsg: fmt.Sprint("schema ", store.SchemaVersion+1)},
		{name: "missing bucket", write: func(path string) error {
			if err := writeBytes(goodBytes)(path); err != nil {
				return err
			}
			return rawUpdate(path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("envelopes")) })
		}, wantErr: store.ErrCorrupt, wantMsg: "envelopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			if err := tc.write(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			db, err := store.Open(path, &store.Options{CheckOnOpen: true})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Open = %v; want %v naming the path and %q", err, tc.wantErr, tc.wantMsg)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("a failed Open modified the file")
			}
			// The failed Open released the file: a good file at the
			// same path opens at once.
			if err := writeBytes(goodBytes)(path); err != nil {
				t.Fatal(err)
			}
			db, err = store.Open(path, &store.Options{LockTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("reopen after failure: %v", err)
			}
			db.Close()
		})
	}
}

// TestOpenCheckOnOpen ensures the optional full check accepts a good file.
func TestOpenCheckOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nano.db")
	for range 2 {
		db := openAt(t, path, &store.Options{CheckOnOpen: true})
		if _, err := db.PutProgram(context.Background(), store.Program{ID: "p"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenLocked ensures a second Open of a file already open fails with
// ErrLocked naming the path instead of waiting forever.
func TestOpenLocked(t *testing.T) {
	db := openTemp(t, nil)
	_, err := store.Open(db.Path(), &store.Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), db.Path()) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s", err, db.Path())
	}
}

// TestClosed ensures every operation after Close returns ErrClosed and
// Close is idempotent.
func TestClosed(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "nano.db"), nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
	}{
		{name: "read", err: func() error { _, err := db.Program(ctx, "p"); return err }()},
		{name: "write", err: func() error { _, err := db.PutProgram(ctx, store.Program{ID: "p"}); return err }()},
		{name: "commit", err: func() error {
			_, err := db.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "e"}, Step: []byte("1")})
			return err
		}()},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tc.name, tc.err)
		}
	}
}

// TestCancelledContext ensures a cancelled context stops an operation
// before it starts.
func TestCancelledContext(t *testing.T) {
	db := openTemp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.PutProgram(ctx, store.Program{ID: "p"}); !errors.Is(err, context.Canceled) {
		t.Errorf("write = %v, want context.Canceled", err)
	}
	if _, err := db.Program(ctx, "p"); !errors.Is(err, context.Canceled) {
		t.Errorf("read = %v, want context.Canceled", err)
	}
}

// TestRestart ensures everything a resumed run needs survives a close and
// reopen: the run still running is listed, its steps and checkpoint are
// there, and the chain continues without a gap.
func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nano.db")
	ctx := context.Background()
	clock := kerneltest.NewManualClock()
	db := openAt(t, path, &store.Options{Now: clock.Now})
	if _, _, err := db.ClaimIdempotencyKey(ctx, "key", "req", "run", 0); err != nil {
		t.Fatal(err)
	}
	ex := store.Run{ID: "run", Status: kernel.StatusRunning, IdempotencyKey: "key"}
	for i := range 3 {
		ex.Input = []byte(`{"next":` + string(rune('1'+i)) + `}`)
		if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: []byte(`"done"`), Envelope: &store.Envelope{StepID: "s"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.PutRun(ctx, store.Run{ID: "waiting", Status: kernel.StatusSuspended}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, path, &store.Options{Now: clock.Now})
	defer db.Close()
	un, err := db.Unfinished(ctx)
	if err != nil || len(un) != 2 || un[0].ID != "run" || string(un[0].Input) != `{"next":3}` || un[1].ID != "waiting" {
		t.Fatalf("Unfinished after restart = %+v, %v", un, err)
	}
	rec, claimed, err := db.ClaimIdempotencyKey(ctx, "key", "req", "other", 0)
	if err != nil || claimed || rec.TraceID != "run" || rec.Status != store.IdempotencyPending {
		t.Fatalf("repeat claim after crash = %+v, %v, %v; want the interrupted run", rec, claimed, err)
	}
	if steps, err := db.Steps(ctx, "run", 0, 0); err != nil || len(steps) != 3 {
		t.Fatalf("steps after restart = %d, %v", len(steps), err)
	}
	env, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: 3, Step: []byte(`"done"`), Envelope: &store.Envelope{StepID: "s"}})
	if err != nil || env.Seq != 4 {
		t.Fatalf("commit after restart = %+v, %v; want seq 4", env, err)
	}
	storetest.VerifyChain(t, db)
}

func writeBytes(b []byte) func(string) error {
	return func(path string) error { return os.WriteFile(path, b, 0o600) }
}

// rawUpdate edits a closed store file through bbolt directly, bypassing
// the store, as an attacker or a bug would.
// tamperedDB applies tamper to the closed database at path, as an
// attacker with the file would, then opens it; the test closes it.
func tamperedDB(t *testing.T, path string, tamper func(tx *bolt.Tx) error) *store.DB {
	t.Helper()
	if err := rawUpdate(path, tamper); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path, nil)
	t.Cleanup(func() { db.Close() })
	return db
}

func rawUpdate(path string, fn func(tx *bolt.Tx) error) error {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	if err := b.Update(fn); err != nil {
		b.Close()
		return err
	}
	return b.Close()
}
