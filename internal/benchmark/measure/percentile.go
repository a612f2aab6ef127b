package measure

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// PercentileMS is the nearest-rank percentile p (0 < p <= 1) of lat, in
// milliseconds; 0 for no samples.
func PercentileMS(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	k := int(p*float64(len(s))+0.999999) - 1
	k = max(0, min(k, len(s)-1))
	return float64(s[k]) / float64(time.Millisecond)
}

// MaxViolations bounds the messages a Violations keeps; the total is
// always counted.
const MaxViolations = 10

// Violations collects broken invariants from concurrent items: the first
// MaxViolations messages and the count of all. The zero value is ready.
type Violations struct {
	mu    sync.Mutex
	msgs  []string
	total int
}

// Failf records one broken invariant.
func (v *Violations) Failf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.total++
	if len(v.msgs) < MaxViolations {
		v.msgs = append(v.msgs, fmt.Sprintf(format, args...))
	}
}

// Report returns the messages kept and the total recorded.
func (v *Violations) Report() ([]string, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.msgs), v.total
}
