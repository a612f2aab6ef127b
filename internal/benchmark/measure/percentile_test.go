package measure

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Ensure nearest-rank percentiles pick the right sample.
func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	tests := []struct {
		name string
		lat  []time.Duration
		p    float64
		want float64
	}{
		{name: "empty", lat: nil, p: 0.5, want: 0},
		{name: "one", lat: ms(7), p: 0.99, want: 7},
		{name: "median of odd", lat: ms(3, 1, 2), p: 0.5, want: 2},
		{name: "p95 of 100", lat: ms(hundred...), p: 0.95, want: 95},
		{name: "p99 of 100", lat: ms(hundred...), p: 0.99, want: 99},
		{name: "max", lat: ms(hundred...), p: 1, want: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PercentileMS(tc.lat, tc.p); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Ensure Violations keeps the first MaxViolations messages, in order, and
// counts every one, from concurrent callers.
func TestViolations(t *testing.T) {
	var v Violations
	if msgs, total := v.Report(); len(msgs) != 0 || total != 0 {
		t.Fatalf("zero value reports %q, %d", msgs, total)
	}
	for i := range 3 {
		v.Failf("first %d", i)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { v.Failf("more %d", i) })
	}
	wg.Wait()
	msgs, total := v.Report()
	if total != 23 || len(msgs) != MaxViolations {
		t.Fatalf("got %d messages of %d, want %d of 23", len(msgs), total, MaxViolations)
	}
	for i := range 3 {
		if want := fmt.Sprintf("first %d", i); msgs[i] != want {
			t.Errorf("message %d = %q, want %q", i, msgs[i], want)
		}
	}
	msgs[0] = "changed"
	if again, _ := v.Report(); again[0] != "first 0" {
		t.Error("Report returned the kept slice, not a copy")
	}
}
