//go:build !unix

package store

import (
	"os"
	"time"
)

// lockJournal relies on bbolt's own lock where flock is missing: the
// journal is off there (see journalSupported).
func lockJournal(*os.File, time.Duration) error { return nil }

func unlockJournal(*os.File) {}
