package canonical

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// Ensure concurrent Hash and Append calls, which share pooled buffers and
// parsers, never see each other's data.
func TestHammer(t *testing.T) {
	const workers, rounds = 8, 200
	values := make([]any, 16)
	want := make([]string, len(values))
	for i := range values {
		m := map[string]any{"i": float64(i), "s": fmt.Sprint("value ", i), "l": []any{i, "x"}}
		if i%2 == 1 {
			raw, _ := json.Marshal(m)
			values[i] = json.RawMessage(raw)
		} else {
			values[i] = m
		}
		var err error
		if want[i], err = Hash(values[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (w + r) % len(values)
				got, err := Hash(values[i])
				if err != nil || got != want[i] {
					errs <- fmt.Errorf("worker %d round %d: Hash(values[%d]) = %s, %v; want %s", w, r, i, got, err, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
