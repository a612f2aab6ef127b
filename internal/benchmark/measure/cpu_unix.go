//go:build unix

package measure

import (
	"syscall"
	"time"
)

// ProcessCPU is this process's user+system CPU time so far (getrusage
// RUSAGE_SELF); 0 when unknown.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
