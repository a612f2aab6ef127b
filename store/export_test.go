package store

import (
	"os"
	"testing"
)

// FileAfterClose closes db and returns what its file then holds, failing
// t if either fails: the bytes a test searches, or damages and writes
// back before opening the file again.
func FileAfterClose(t testing.TB, db *DB) []byte {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
