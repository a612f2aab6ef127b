//go:build !unix

package benchmark

import "time"

// processCPU is unknown here: the CPU figures stay zero.
func processCPU() time.Duration { return 0 }
