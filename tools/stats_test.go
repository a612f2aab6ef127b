package tools

import (
	"context"
	"testing"
)

// Ensure the host's counters count what happened: a fresh call
// instantiates or resets a kept instance, a pooled tool instantiates once and then hits
// its warm instance, and each call reports its guest's memory.
func TestHostStats(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "pooled"; m.Isolation = IsolationPool; m.PoolSize = 1 })
	register(t, r, "get_order_amount", nil)
	before := r.host.Stats()
	for range 3 {
		for _, name := range []string{"pooled", "get_order_amount"} {
			res, err := r.Call(ctx, name, CallRequest{Args: map[string]any{"order_id": "o-9"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.MemoryBytes == 0 {
				t.Fatalf("%s: MemoryBytes 0", name)
			}
		}
	}
	s := r.host.Stats()
	// get_order_amount is resettable (reset.go): its first fresh call
	// instantiates, the next two reset the kept instance.
	if got := s.Instantiations - before.Instantiations; got != 2 {
		t.Errorf("instantiations = %d, want 2 (1 fresh, 1 pooled)", got)
	}
	if got := s.Resets - before.Resets; got != 2 {
		t.Errorf("resets = %d, want 2", got)
	}
	if got := s.PoolHits - before.PoolHits; got != 2 {
		t.Errorf("pool hits = %d, want 2", got)
	}
	if s.PoolWaits != before.PoolWaits || s.BudgetRefusals != before.BudgetRefusals {
		t.Errorf("waits %d, refusals %d: want none", s.PoolWaits-before.PoolWaits, s.BudgetRefusals-before.BudgetRefusals)
	}
	if s.MemoryInUse == 0 {
		t.Error("the idle pooled instance holds no memory")
	}
}
