package store_test

import (
	"errors"

	"crypto/sha256"
	"encoding/hex"

	"github.com/nanovm/nano-vm-mcp/store"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
