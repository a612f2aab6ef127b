package store_test

import (
	"errors"
	"testing"

	"crypto/sha256"
	"encoding/hex"

	"github.com/nanovm/nano-vm-mcp/store"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// openAt opens the bbolt store at path, failing t if it cannot. The caller
// closes it: the tests that use it close and reopen the file, or damage it
// between opens.
func openAt(t testing.TB, path string, opts *store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
