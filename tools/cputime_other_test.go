//go:build !unix

package tools

import (
	"testing"
	"time"
)

// processCPU is unknown here: -1, and no CPU metric is reported.
func processCPU(*testing.B) time.Duration { return -1 }
