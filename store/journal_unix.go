//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockJournal takes an exclusive flock on the journal, waiting up to
// timeout: the journal is locked before the bbolt file is touched, since
// recovery writes the bbolt file's meta pages before bbolt opens it.
func lockJournal(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock journal: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock journal %s: %w (waited %s)", f.Name(), ErrLocked, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unlockJournal(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
