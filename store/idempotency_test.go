package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

// Ensure a corrupt idempotency record is a CorruptIdempotencyError naming
// the key and the operator's command, that purging skips it, and that
// DeleteIdempotencyKey clears it so the key can be claimed again.
func TestCorruptIdempotencyRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	db := openAt(t, path, nil)
	for _, k := range []string{"bad", "good"} {
		if _, _, err := db.ClaimIdempotencyKey(ctx, k, "h", "exec-"+k, time.Nanosecond); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if err := rawUpdate(path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("idempotency")).Put([]byte("bad"), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, nil)
	defer db.Close()

	_, _, err := db.ClaimIdempotencyKey(ctx, "bad", "h", "exec-2", time.Hour)
	var ce *store.CorruptIdempotencyError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrCorrupt) || ce.Key != "bad" || !strings.Contains(err.Error(), "idempotency rm") {
		t.Fatalf("claim of the corrupt key: %v", err)
	}
	// Both records expired long ago: the good one is purged, the corrupt
	// one is left for the operator and the purge does not fail.
	if n, err := db.PurgeExpired(ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	entries, err := db.IdempotencyEntries(ctx)
	if err != nil || len(entries) != 1 || entries[0].Key != "bad" || entries[0].Err == nil {
		t.Fatalf("entries: %+v, %v", entries, err)
	}
	if found, err := db.DeleteIdempotencyKey(ctx, "bad"); err != nil || !found {
		t.Fatalf("delete: %v, %v", found, err)
	}
	if _, claimed, err := db.ClaimIdempotencyKey(ctx, "bad", "h", "exec-3", time.Hour); err != nil || !claimed {
		t.Fatalf("claim after delete: %v, %v", claimed, err)
	}
}

// Ensure the id and key limits: at the limit accepted, one byte over or a
// control character refused with ErrInvalidID, the value clipped.
func TestIDLimits(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name  string
		check func(string) error
		ok    []string
		bad   []string
	}{
		{"id", func(s string) error { return store.CheckID("program", s) },
			[]string{"a", strings.Repeat("é", 128), "prog v1.2/β"},
			[]string{"", strings.Repeat("x", 257), long, "a\x00b", "a\tb", "a\u0085b", "\xff"}},
		{"key", store.CheckIdempotencyKey,
			[]string{"k", strings.Repeat("k", 255), "order #42 / retry"},
			[]string{"", strings.Repeat("k", 256), long, "a\nb"}},
	}
	for _, tc := range tests {
		for _, s := range tc.ok {
			if err := tc.check(s); err != nil {
				t.Errorf("%s %q: %v", tc.name, s, err)
			}
		}
		for _, s := range tc.bad {
			err := tc.check(s)
			if !errors.Is(err, store.ErrInvalidID) {
				t.Errorf("%s %.20q: %v, want ErrInvalidID", tc.name, s, err)
				continue
			}
			if len(err.Error()) > 200 {
				t.Errorf("%s: error not clipped: %d bytes", tc.name, len(err.Error()))
			}
		}
	}
	if err := store.CheckSecretID(long); !errors.Is(err, store.ErrInvalidRef) || len(err.Error()) > 300 {
		t.Errorf("secret id: %v", err)
	}
}
