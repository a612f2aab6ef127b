//go:build unix

package primary

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/nanovm/nano-vm-mcp/store"
)

const supported = true

// tryLock takes an exclusive flock on path without waiting. It returns nil,
// nil when another process (or another open file in this one) holds it.
// The lock dies with the process, so a SIGKILLed primary frees it at once.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open election lock %s: %w", path, store.EnvError(err))
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		return f, nil
	}
	f.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, nil
	}
	return nil, fmt.Errorf("lock %s: %w", path, err)
}
