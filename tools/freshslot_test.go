package tools

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// pristineProbe is what leak_probe prints in an instance no call touched
// before: zeroed memory, a zero global, an empty table slot, its data
// segment as loaded, the deterministic clock's and random source's first
// readings.
func pristineProbe() map[string]any {
	clock, random := firstReadings()
	return map[string]any{
		"mem":    strings.Repeat("00", 8),
		"global": strings.Repeat("00", 8),
		"table":  float64(0),
		"data":   hex.EncodeToString([]byte("pristine")),
		"clock":  clock,
		"random": random,
	}
}

// firstReadings are a tool's first readings of the deterministic clock
// and random source, hex-encoded as the probe tools print them.
func firstReadings() (clock, random string) {
	var c, r [8]byte
	binary.LittleEndian.PutUint64(c[:], uint64(fakeEpochNanos))
	_, _ = mrand.NewChaCha8(randSeed).Read(r[:])
	return hex.EncodeToString(c[:]), hex.EncodeToString(r[:])
}

// Ensure a fresh call sees nothing an earlier call of the same tool left,
// though the second reuses the first's slot (config, streams, clocks,
// random source, allocator): leak_probe leaves secrets in memory far from
// the start, a global, a table slot and a data segment it overwrote, and
// every later call, of another trace, sequential or concurrent, finds
// them pristine, reads the clock and random source from their start, and
// reads only its own arguments on stdin.
func TestFreshCallLeavesNothing(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "leak_probe")
	tool, err := r.Resolve(ctx, "leak_probe")
	if err != nil {
		t.Fatal(err)
	}
	want := pristineProbe()
	check := func(t *testing.T, i int, args map[string]any) {
		res, err := tool.Call(ctx, CallRequest{TraceID: "trace-" + string(rune('a'+i%26)), Args: args})
		if err != nil {
			t.Error(err)
			return
		}
		got, _ := res.Output.(map[string]any)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("call %d: %s = %v, want %v (left by an earlier call?)", i, k, got[k], v)
			}
		}
		in, err := marshalJSON(args)
		if err != nil {
			t.Fatal(err)
		}
		if got["stdin"] != hex.EncodeToString(in) {
			s, _ := hex.DecodeString(got["stdin"].(string))
			t.Errorf("call %d read %q on stdin, want its own %q", i, s, in)
		}
	}
	// A long argument first, then short ones: a reused stdin must not
	// hand out the rest of the long one.
	check(t, 0, map[string]any{"pad": strings.Repeat("SECRET-ARG ", 40)})
	for i := 1; i < 5; i++ {
		check(t, i, map[string]any{"i": float64(i)})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				check(t, 100*(g+1)+i, map[string]any{"g": float64(g), "pad": strings.Repeat("x", i*7)})
			}
		})
	}
	wg.Wait()
}

// Ensure a fresh call after calls that timed out, breached a limit or
// were cancelled by their caller starts with a live context: a deadline
// context that ended is never handed to a later call.
func TestFreshCallAfterFailures(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "loop", "flood", "get_order_amount")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 5 {
		if _, err := r.Call(ctx, "loop", CallRequest{Timeout: time.Millisecond}); !errors.Is(err, ErrTimeout) {
			t.Fatalf("round %d: loop: err = %v, want %v", i, err, ErrTimeout)
		}
		if _, err := r.Call(ctx, "flood", CallRequest{}); !errors.Is(err, ErrOutputLimit) {
			t.Fatalf("round %d: flood: err = %v, want %v", i, err, ErrOutputLimit)
		}
		if _, err := r.Call(cancelled, "get_order_amount", CallRequest{Args: map[string]any{"order_id": "o-1"}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: cancelled caller: err = %v, want %v", i, err, context.Canceled)
		}
		for j := range 3 {
			if _, err := r.Call(ctx, "get_order_amount", CallRequest{Args: map[string]any{"order_id": "o-1"}}); err != nil {
				t.Fatalf("round %d, call %d after the failures: %v", i, j, err)
			}
		}
	}
}

// Ensure the recycled deadline context behaves as context.WithTimeout's:
// its error, its deadline (the parent's when earlier), the parent's end
// reaching it, and that one which ended is never handed out again.
func TestDeadlineCtx(t *testing.T) {
	bg := context.Background()
	// Each ends a deadline context its own way; it must then report want
	// and never be handed out again.
	ends := []struct {
		name string
		end  func() *deadlineCtx
		want error
	}{
		{"times out", func() *deadlineCtx { return newDeadline(bg, time.Millisecond) }, context.DeadlineExceeded},
		{"cancelled", func() *deadlineCtx {
			d := newDeadline(bg, time.Hour)
			d.cancel(context.Canceled)
			return d
		}, context.Canceled},
		{"parent cancelled", func() *deadlineCtx {
			p, cancel := context.WithCancel(bg)
			d := newDeadline(p, time.Hour)
			cancel()
			return d
		}, context.Canceled},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.end()
			<-d.Done()
			if err := d.Err(); err != tc.want {
				t.Fatalf("Err = %v", err)
			}
			releaseDeadline(d)
			assertNeverReused(t, d)
		})
	}
	t.Run("cause under a live cancellable parent", func(t *testing.T) {
		p, cancel := context.WithCancel(bg)
		defer cancel()
		d := newDeadline(p, time.Millisecond)
		<-d.Done()
		if err := context.Cause(d); err != context.DeadlineExceeded {
			t.Fatalf("Cause = %v, want %v", err, context.DeadlineExceeded)
		}
		child, stop := context.WithCancel(d)
		defer stop()
		<-child.Done()
		if err := context.Cause(child); err != context.DeadlineExceeded {
			t.Fatalf("child's Cause = %v, want %v", err, context.DeadlineExceeded)
		}
		releaseDeadline(d)
	})
	t.Run("parent already cancelled", func(t *testing.T) {
		p, cancel := context.WithCancel(bg)
		cancel()
		d := newDeadline(p, time.Hour)
		<-d.Done()
		if err := d.Err(); err != context.Canceled {
			t.Fatalf("Err = %v", err)
		}
		releaseDeadline(d)
	})
	t.Run("parent deadline first", func(t *testing.T) {
		p, cancel := context.WithTimeout(bg, time.Millisecond)
		defer cancel()
		d := newDeadline(p, time.Hour)
		pd, _ := p.Deadline()
		if dd, ok := d.Deadline(); !ok || !dd.Equal(pd) {
			t.Fatalf("Deadline = %v, %v; want the parent's %v", dd, ok, pd)
		}
		<-d.Done()
		if err := d.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err = %v", err)
		}
		releaseDeadline(d)
	})
	t.Run("own deadline first", func(t *testing.T) {
		before := time.Now()
		d := newDeadline(bg, time.Hour)
		dd, ok := d.Deadline()
		if !ok || dd.Before(before.Add(time.Hour)) || dd.After(time.Now().Add(time.Hour)) {
			t.Fatalf("Deadline = %v, %v; want an hour from now", dd, ok)
		}
		releaseDeadline(d)
	})
	t.Run("values", func(t *testing.T) {
		type key struct{}
		d := newDeadline(context.WithValue(bg, key{}, "v"), time.Hour)
		if v := d.Value(key{}); v != "v" {
			t.Fatalf("Value = %v", v)
		}
		releaseDeadline(d)
	})
	t.Run("released then reused is live", func(t *testing.T) {
		for range 100 {
			p, cancel := context.WithCancel(bg)
			d := newDeadline(p, time.Hour)
			if d.Err() != nil {
				t.Fatalf("a handed-out context has ended: %v", d.Err())
			}
			select {
			case <-d.Done():
				t.Fatal("a handed-out context is done")
			default:
			}
			releaseDeadline(d)
			cancel() // after release: must not reach a later call
		}
	})
	t.Run("an idle watch serves the parent's next call", func(t *testing.T) {
		p, cancel := context.WithCancel(bg)
		defer cancel()
		releaseDeadline(newDeadline(p, time.Hour)) // leaves p's watch idle
		d := newDeadline(p, time.Hour)
		cancel()
		<-d.Done()
		if err := d.Err(); err != context.Canceled {
			t.Fatalf("Err = %v", err)
		}
		releaseDeadline(d)
	})
	t.Run("idle watches are bounded", func(t *testing.T) {
		for range 3 * maxIdleWatches {
			p, cancel := context.WithCancel(bg)
			defer cancel() // only once the test ends: idle till then
			releaseDeadline(newDeadline(p, time.Hour))
		}
		watchesMu.Lock()
		n, idle := len(watches), len(idleWatches)
		watchesMu.Unlock()
		if n > maxIdleWatches || idle > maxIdleWatches {
			t.Fatalf("%d watches (%d idle) kept for parents without calls; want at most %d", n, idle, maxIdleWatches)
		}
	})
}

// assertNeverReused checks that newDeadline does not return d again.
func assertNeverReused(t *testing.T, d *deadlineCtx) {
	t.Helper()
	var got []*deadlineCtx
	defer func() {
		for _, g := range got {
			releaseDeadline(g)
		}
	}()
	for range 50 {
		g := newDeadline(context.Background(), time.Hour)
		if g == d {
			t.Fatal("an ended deadline context was handed out again")
		}
		got = append(got, g)
	}
}

// Ensure a pooled call reads only its own arguments on stdin, never the
// rest of a longer earlier call's, though the instance (whose memory
// persists between calls by design) and its stdin stream are reused.
func TestPooledCallReadsOnlyItsOwnStdin(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	register(t, r, "leak_probe", func(m *Manifest) { m.Isolation = IsolationPool; m.PoolSize = 1 })
	for i, args := range []map[string]any{
		{"pad": strings.Repeat("SECRET-ARG ", 40)},
		{"i": float64(1)},
		{},
		{"i": float64(2)},
	} {
		res, err := r.Call(ctx, "leak_probe", CallRequest{Args: args})
		if err != nil {
			t.Fatal(err)
		}
		in, _ := marshalJSON(args)
		got, _ := res.Output.(map[string]any)
		if got["stdin"] != hex.EncodeToString(in) {
			s, _ := hex.DecodeString(got["stdin"].(string))
			t.Fatalf("call %d read %q on stdin, want its own %q", i, s, in)
		}
	}
}
