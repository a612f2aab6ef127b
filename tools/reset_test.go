package tools

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// pristineReset is what reset_probe prints in an instance no call touched
// before: zeroed memory far out and in the stack, a zero global, its data
// counter as loaded (42), the stack pointer at 0x8000, the start section
// run once, its table of 3 and one page, the deterministic clock's and
// random source's first readings.
func pristineReset() map[string]any {
	clock, random := firstReadings()
	return map[string]any{
		"mem":    strings.Repeat("00", 8),
		"global": strings.Repeat("00", 8),
		"data":   "2a000000",
		"sp":     "00800000",
		"stack":  strings.Repeat("00", 8),
		"inits":  "01000000",
		"tsize":  float64(3),
		"pages":  float64(1),
		"clock":  clock,
		"random": random,
	}
}

// probeCall calls tool with args and checks that it found the pristine
// state and read its own arguments on stdin.
func probeCall(t *testing.T, tool *Tool, i int, args map[string]any) {
	t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	res, err := tool.Call(context.Background(), CallRequest{TraceID: "trace-" + string(rune('a'+i%26)), Args: args})
	if err != nil {
		t.Errorf("call %d: %v", i, err)
		return
	}
	got, _ := res.Output.(map[string]any)
	for k, v := range pristineReset() {
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
	if res.MemoryBytes != 1<<16 {
		t.Errorf("call %d: MemoryBytes %d, want one page", i, res.MemoryBytes)
	}
}

// Ensure a fresh call that runs in a kept, reset instance (reset.go) sees
// nothing an earlier call left: reset_probe marks memory far out, a
// global no export names, a data segment's counter, the stack below a
// stack pointer it moves, and counts its start section's runs; every
// later call, of another trace, sequential or concurrent, finds them
// pristine. The counters prove the reset path ran for reset_probe, and
// never for leak_probe, whose table writes rule it out.
func TestResetCallLeavesNothing(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "reset_probe", "leak_probe")
	h := r.host
	tool, err := r.Resolve(ctx, "reset_probe")
	if err != nil {
		t.Fatal(err)
	}
	leak, err := r.Resolve(ctx, "leak_probe")
	if err != nil {
		t.Fatal(err)
	}
	if !tool.reset || leak.reset {
		t.Fatalf("resettable: reset_probe %v, leak_probe %v; want true, false", tool.reset, leak.reset)
	}
	before := h.Stats()
	probeCall(t, tool, 0, map[string]any{"pad": strings.Repeat("SECRET-ARG ", 40)})
	for i := 1; i < 5; i++ {
		probeCall(t, tool, i, map[string]any{"i": float64(i)})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				probeCall(t, tool, 100*(g+1)+i, map[string]any{"g": float64(g), "pad": strings.Repeat("x", i*7)})
			}
		})
	}
	wg.Wait()
	s := h.Stats()
	inst, resets := s.Instantiations-before.Instantiations, s.Resets-before.Resets
	if inst+resets != 85 || resets < 85-maxKept || inst > 5 {
		t.Errorf("85 calls: %d instantiations, %d resets; want all but one per concurrent call reset", inst, resets)
	}
	before = h.Stats()
	for i := range 3 {
		if _, err := leak.Call(ctx, CallRequest{Args: map[string]any{"i": float64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if s := h.Stats(); s.Resets != before.Resets || s.Instantiations-before.Instantiations != 3 {
		t.Errorf("leak_probe: %d resets, %d instantiations; want 0, 3", s.Resets-before.Resets, s.Instantiations-before.Instantiations)
	}
}

// Ensure a call that ended any way but cleanly leaves no instance to the
// next: after a memory.grow, an exit (3, or 0 through proc_exit), a trap
// or a timeout (the stop flag), the next call instantiates and finds the
// pristine state (one page). A call long enough to take the termination
// check's exit to Go, which grows the table by 0, ends cleanly: the next
// call reuses its instance, whose table is as it was.
func TestResetAfterFailures(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "reset_probe")
	h := r.host
	tool, err := r.Resolve(ctx, "reset_probe")
	if err != nil {
		t.Fatal(err)
	}
	probeCall(t, tool, 0, nil) // an instance kept
	for i, tc := range []struct {
		mode    string
		wantErr error // nil for success
		reused  bool  // the next call resets the instance
	}{
		{mode: "g"},
		{mode: "x", wantErr: &ExitError{Code: 3}},
		{mode: "z"},
		{mode: "t", wantErr: ErrTrap},
		{mode: "s", wantErr: ErrTimeout},
		{mode: "l", reused: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			before := h.Stats()
			_, err := tool.Call(ctx, CallRequest{Args: map[string]any{"m": tc.mode}, Timeout: 200 * time.Millisecond})
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("mode %s: %v", tc.mode, err)
				}
			case *ExitError:
				var exit *ExitError
				if !errors.As(err, &exit) || exit.Code != want.Code {
					t.Fatalf("mode %s: err = %v, want exit %d", tc.mode, err, want.Code)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("mode %s: err = %v, want %v", tc.mode, err, want)
				}
			}
			if s := h.Stats(); s.Resets-before.Resets != 1 {
				t.Fatalf("mode %s ran in a new instance (%d resets): the test needs a kept one", tc.mode, s.Resets-before.Resets)
			}
			mid := h.Stats()
			probeCall(t, tool, i+1, map[string]any{"after": tc.mode})
			s := h.Stats()
			if got := s.Resets - mid.Resets; (got == 1) != tc.reused || s.Instantiations-mid.Instantiations+got != 1 {
				t.Errorf("after mode %s: %d resets, %d instantiations; want reused %v", tc.mode, got, s.Instantiations-mid.Instantiations, tc.reused)
			}
		})
	}
}

// Ensure kept instances hold their memory in the budget while idle, give
// it back when a reservation needs the room (reclaim) and when the host
// closes.
func TestResetKeptBudget(t *testing.T) {
	ctx := context.Background()
	h, err := NewHost(ctx, HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "reset_probe", nil)
	tool, err := r.Resolve(ctx, "reset_probe")
	if err != nil {
		t.Fatal(err)
	}
	fill := func() {
		var wg sync.WaitGroup
		for range maxKept + 2 {
			wg.Go(func() { probeCall(t, tool, 0, nil) })
		}
		wg.Wait()
		if n := keptCount(tool); n == 0 || n > maxKept {
			t.Fatalf("%d instances kept, want 1..%d", n, maxKept)
		}
		if held, kept := h.MemoryInUse(), keptHeld(h); held == 0 || held != kept {
			t.Fatalf("budget holds %d bytes, the kept instances %d", held, kept)
		}
	}
	fill()
	// A reservation of the whole budget closes every kept instance.
	if !h.reserve(h.budget.limit) {
		t.Fatal("the whole budget was refused with only kept instances holding any")
	}
	h.budget.release(h.budget.limit)
	if n := keptCount(tool); n != 0 || h.MemoryInUse() != 0 {
		t.Fatalf("after reclaim: %d kept, %d bytes held", n, h.MemoryInUse())
	}
	fill()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := keptCount(tool); n != 0 || h.MemoryInUse() != 0 {
		t.Fatalf("after Close: %d kept, %d bytes held", n, h.MemoryInUse())
	}
}

func keptCount(t *Tool) int {
	t.keptMu.Lock()
	defer t.keptMu.Unlock()
	return len(t.kept)
}

// Ensure the reset path is chosen only where a reset is complete: a
// module with table writes, one importing a function that changes the
// WASI file table or blocks on it (every Go module, jq here), a pooled
// tool, an Extism plugin and a command whose argv varies per call all
// instantiate per call as before.
func TestResettableTools(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t, "get_order_amount", "leak_probe", "table_grow", "jq", "fs_rw", "extism_v1", "secret_echo", "reset_probe")
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "pooled"; m.Isolation = IsolationPool; m.PoolSize = 1 })
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "argv"; m.Command = &Command{Argv: []string{"{order_id}"}} })
	register(t, r, "get_order_amount", func(m *Manifest) { m.Name = "fixed"; m.Command = &Command{Argv: []string{"x"}} })
	for name, want := range map[string]bool{
		"get_order_amount": true, "secret_echo": true, "reset_probe": true, "fixed": true,
		"leak_probe": false, "table_grow": false, "jq": false, "fs_rw": false, "extism_v1": false, "pooled": false, "argv": false,
	} {
		tool, err := r.Resolve(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tool.reset != want {
			t.Errorf("%s: reset %v, want %v", name, tool.reset, want)
		}
	}
}

// Ensure an instance that resolved a secret serves no later call, though
// its memory would be reset: the next call instantiates.
func TestResetNotAfterSecret(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, HostOptions{Secrets: secretMap{"vault://secret/card": "4242"}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "secret_echo", nil)
	call := func(ref string) (inst, resets uint64) {
		t.Helper()
		before := h.Stats()
		_, _ = r.Call(ctx, "secret_echo", CallRequest{Args: map[string]any{"ref": ref}})
		s := h.Stats()
		return s.Instantiations - before.Instantiations, s.Resets - before.Resets
	}
	call("vault://secret/none") // kept: it resolved nothing
	if inst, resets := call("vault://secret/card"); resets != 1 || inst != 0 {
		t.Fatalf("call with a secret: %d instantiations, %d resets; want the kept instance", inst, resets)
	}
	if inst, resets := call("vault://secret/none"); resets != 0 || inst != 1 {
		t.Fatalf("call after the secret: %d instantiations, %d resets; want a new instance", inst, resets)
	}
}
