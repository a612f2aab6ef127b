package tools

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Ensure the server's calls in flight bound the call stacks hostile calls
// make the host hold outside the memory budget: 24 endless recursions of
// a fresh tool at once, with two calls in flight allowed, each end in a
// stack overflow (none is refused), later ones having waited, and the
// heap never holds much more than two calls' stacks. (Before: no bound
// but the callers' own concurrency; 24 at once held 2.9 GiB.)
func TestCallsInFlightBoundCallStacks(t *testing.T) {
	const calls, inFlight = 24, 2
	r := NewRegistry(newHost(t, HostOptions{Ceilings: Ceilings{CallsInFlight: inFlight}}), NewMemoryStore(), RegistryOptions{})
	m := manifestFor("recurse")
	m.Limits.MemoryMiB = 1
	// Waiting for a call in flight counts against a call's timeout: the
	// last of 24 waits for eleven pairs of recursions (seconds under -race).
	m.Limits.TimeoutMS = int(DefaultCallTimeout.Milliseconds())
	if err := registerBytes(t, r, m, deepCallModule(1<<30)); err != nil {
		t.Fatal(err)
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, calls)
	for i := range calls {
		wg.Go(func() { _, errs[i] = r.Call(context.Background(), "recurse", CallRequest{}) })
	}
	wg.Wait()
	close(stop)
	<-sampled
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "stack overflow") {
			t.Fatalf("call %d: %v; want a stack overflow", i, err)
		}
	}
	if w := r.host.Stats().CallWaits; w == 0 {
		t.Errorf("no call waited for one of the %d calls in flight", inFlight)
	}
	// Two calls' stacks (about 122 MiB each at their end, 161 MiB made in
	// all) and the garbage of those before them; 24 unbounded calls held
	// over 2,800 MiB.
	const bound = 1 << 30
	t.Logf("%d endless recursions, %d in flight: peak heap in use %d MiB", calls, inFlight, peak.Load()>>20)
	if p := peak.Load(); p > bound {
		t.Fatalf("peak heap in use %d MiB, above %d MiB: the calls in flight do not bound the call stacks", p>>20, bound>>20)
	}
}

// Ensure a call that cannot get one of the server's calls in flight within
// its timeout fails with ErrTimeout, naming the ceiling and its flag, while
// the call holding it runs on, for a fresh and a pooled tool.
func TestCallsInFlightWaitTimesOut(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		name := map[bool]string{false: "fresh", true: "pooled"}[pooled]
		t.Run(name, func(t *testing.T) {
			h := newHost(t, HostOptions{Ceilings: Ceilings{CallsInFlight: 1}})
			r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
			register(t, r, "loop", func(m *Manifest) { m.Limits.TimeoutMS = 2000 })
			register(t, r, "poll", func(m *Manifest) {
				if pooled {
					m.Isolation = IsolationPool
				}
			})
			held := make(chan error, 1)
			go func() {
				_, err := r.Call(context.Background(), "loop", CallRequest{})
				held <- err
			}()
			for len(h.calls) == 0 {
				time.Sleep(time.Millisecond)
			}
			_, err := r.Call(context.Background(), "poll", CallRequest{Args: map[string]any{"status": "SUCCESS"}, Timeout: 50 * time.Millisecond})
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "waiting for one of the server's 1 calls in flight to end (--max-calls-in-flight)") {
				t.Fatalf("a call past the calls in flight: %v", err)
			}
			if err := <-held; !errors.Is(err, ErrTimeout) || strings.Contains(err.Error(), "calls in flight") {
				t.Fatalf("the call holding the only call in flight: %v; want its own timeout", err)
			}
			if _, err := r.Call(context.Background(), "poll", CallRequest{Args: map[string]any{"status": "SUCCESS"}}); err != nil {
				t.Fatalf("a call once the holder ended: %v", err)
			}
		})
	}
}

// Ensure one session's calls cannot hold every call in flight: with four
// in flight and two a session, a session holding its two waits for them
// (ErrTimeout naming the per-session flag) while another session's call
// and a call without a session run at once; and a session's share is
// forgotten once its calls end.
func TestCallsInFlightPerSession(t *testing.T) {
	h := newHost(t, HostOptions{Ceilings: Ceilings{CallsInFlight: 4, CallsInFlightPerSession: 2}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "loop", func(m *Manifest) { m.Limits.TimeoutMS = 60_000 })
	register(t, r, "poll", nil)
	hog, cancel := context.WithCancel(WithSession(context.Background(), "session-a"))
	held := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := r.Call(hog, "loop", CallRequest{})
			held <- err
		}()
	}
	for len(h.calls) < 2 {
		time.Sleep(time.Millisecond)
	}
	quick := CallRequest{Args: map[string]any{"status": "SUCCESS"}, Timeout: 50 * time.Millisecond}
	_, err := r.Call(hog, "poll", quick)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "waiting for one of this session's 2 calls in flight to end (--max-calls-in-flight-per-session)") {
		t.Fatalf("a third call of a session holding its two: %v", err)
	}
	if w := h.Stats().SessionCallWaits; w != 1 {
		t.Errorf("session call waits %d, want 1", w)
	}
	quick.Timeout = 10 * time.Second
	if _, err := r.Call(WithSession(context.Background(), "session-b"), "poll", quick); err != nil {
		t.Fatalf("another session's call while the first holds its share: %v", err)
	}
	if _, err := r.Call(context.Background(), "poll", quick); err != nil {
		t.Fatalf("a call without a session while a session holds its share: %v", err)
	}
	if w := h.Stats().CallWaits; w != 0 {
		t.Errorf("%d calls waited for the server's calls in flight; two of four were free", w)
	}
	cancel()
	for range 2 {
		if err := <-held; err == nil {
			t.Fatal("an endless loop returned without an error")
		}
	}
	if _, err := r.Call(WithSession(context.Background(), "session-a"), "poll", quick); err != nil {
		t.Fatalf("the session's call once its others ended: %v", err)
	}
	h.sessions.mu.Lock()
	left := len(h.sessions.m)
	h.sessions.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d session shares remembered after every call ended", left)
	}
}

// Ensure the per-session share defaults to three quarters of the calls in
// flight, at least one, and never exceeds them.
func TestCallsInFlightPerSessionDefault(t *testing.T) {
	for _, tt := range []struct{ inFlight, perSession, want int }{
		{64, 0, 48}, {10, 0, 7}, {1, 0, 1}, {4, 9, 4}, {8, 3, 3},
	} {
		c := Ceilings{CallsInFlight: tt.inFlight, CallsInFlightPerSession: tt.perSession}.withDefaults()
		if c.CallsInFlightPerSession != tt.want {
			t.Errorf("CallsInFlight %d, CallsInFlightPerSession %d: got %d, want %d", tt.inFlight, tt.perSession, c.CallsInFlightPerSession, tt.want)
		}
	}
}

// Ensure taking and giving back a call in flight allocates nothing: every
// guest call does it. (Before: enterCall returned the method value
// h.leaveCall, which escaped, one allocation per call.)
func TestEnterCallAllocatesNothing(t *testing.T) {
	h := newHost(t, HostOptions{Ceilings: Ceilings{CallsInFlight: 1}})
	ctx := context.Background()
	n := testing.AllocsPerRun(100, func() {
		share, err := h.enterCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h.leaveCall(share)
	})
	if n != 0 {
		t.Errorf("enterCall and leaveCall: %v allocations, want 0", n)
	}
}
