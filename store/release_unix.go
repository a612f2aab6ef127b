//go:build unix

package store

import (
	"os"
	"syscall"
)

// releaseFile unlocks and closes a file bbolt left open when it panicked
// mid-Open. Closing alone is not enough: bbolt's mmap keeps the open file
// description, and with it the flock, alive.
func releaseFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}
