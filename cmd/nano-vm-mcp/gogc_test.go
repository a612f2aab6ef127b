package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// Ensure the binary sets the collector's target to defaultGOGC when GOGC
// is unset, and leaves Go's own setting alone when the operator set GOGC.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	val, had := os.LookupEnv("GOGC")
	defer func() {
		if had {
			os.Setenv("GOGC", val)
		} else {
			os.Unsetenv("GOGC")
		}
	}()

	os.Unsetenv("GOGC")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Errorf("GOGC unset: collector target %d, want %d", got, defaultGOGC)
	}
	if got := debug.SetMemoryLimit(-1); got != defaultMemLimit {
		t.Errorf("GOGC and GOMEMLIMIT unset: memory limit %d, want %d", got, defaultMemLimit)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	os.Setenv("GOGC", "100")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100 set: collector target %d, want it left at 100", got)
	}
}
