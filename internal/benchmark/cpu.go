package benchmark

import (
	"runtime/metrics"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark/measure"
)

// usage is what the process has consumed so far: CPU time from the
// operating system (user + system, all threads), the Go runtime's own
// account of its garbage collector's CPU, and heap allocations. A
// scenario reports the difference over its timed phase, so figures from a
// shared machine compare by work done rather than by wall time.
type usage struct {
	cpu    time.Duration // rusage user + sys; 0 where unknown
	gcCPU  float64       // seconds, /cpu/classes/gc/total
	allocs uint64        // /gc/heap/allocs:objects
	bytes  uint64        // /gc/heap/allocs:bytes
}

var usageMetrics = []string{
	"/cpu/classes/gc/total:cpu-seconds",
	"/gc/heap/allocs:objects",
	"/gc/heap/allocs:bytes",
}

func readUsage() usage {
	s := make([]metrics.Sample, len(usageMetrics))
	for i, n := range usageMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	u := usage{cpu: measure.ProcessCPU()}
	if s[0].Value.Kind() == metrics.KindFloat64 {
		u.gcCPU = s[0].Value.Float64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		u.allocs = s[1].Value.Uint64()
	}
	if s[2].Value.Kind() == metrics.KindUint64 {
		u.bytes = s[2].Value.Uint64()
	}
	return u
}

// fillUsage sets r's CPU and allocation figures from the usage before and
// after the timed phase.
func (r *Result) fillUsage(before, after usage) {
	items := float64(max(r.Items, 1))
	if after.cpu > 0 {
		cpu := (after.cpu - before.cpu).Seconds()
		r.CPUSeconds = cpu
		r.CPUMicrosPerItem = cpu * 1e6 / items
		if r.Seconds > 0 {
			r.CPUCores = cpu / r.Seconds
		}
	}
	// The runtime's GC time over the CPU the process really used (its
	// own total counts idle processors too).
	if r.CPUSeconds > 0 {
		r.GCShare = min((after.gcCPU-before.gcCPU)/r.CPUSeconds, 1)
	}
	r.AllocsPerItem = float64(after.allocs-before.allocs) / items
	r.AllocBytesPerItem = float64(after.bytes-before.bytes) / items
}
