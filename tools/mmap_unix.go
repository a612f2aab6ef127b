//go:build unix

package tools

import "syscall"

// mapRegion reserves n bytes of zeroed, private, anonymous memory outside
// the Go heap. Its pages cost nothing until the guest touches them, and
// unmapRegion returns them to the system at once.
func mapRegion(n uint64) ([]byte, error) {
	if n == 0 {
		return []byte{}, nil
	}
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
}

// unmapRegion releases a mapping from mapRegion. Nothing may use it after.
func unmapRegion(b []byte) {
	if cap(b) > 0 {
		_ = syscall.Munmap(b[:cap(b)])
	}
}
