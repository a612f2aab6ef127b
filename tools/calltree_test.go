package tools

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	w "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// Ensure a guest that never loops but calls itself in a tree (2^40 calls,
// 40 deep) is stopped at its timeout, fresh and pooled. wazero checks a
// call's context only at loop headers, so before the host put a check at
// the entry of every function that calls (wasmbin.GuardCalls) this call
// ran for hours past its 300 ms, and no garbage collection could stop the
// world while it did: the whole process waited for it.
func TestCallTreeStoppedAtTimeout(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		name := map[bool]string{false: "fresh", true: "pooled"}[pooled]
		t.Run(name, func(t *testing.T) {
			r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
			register(t, r, "calltree", func(m *Manifest) {
				if pooled {
					m.Isolation = IsolationPool
				}
			})
			for range 2 { // a pooled instance closed by the timeout is replaced
				_, err := r.Call(context.Background(), "calltree", CallRequest{})
				if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 300ms") {
					t.Fatalf("a call tree past its timeout: %v; want ErrTimeout", err)
				}
			}
		})
	}
}

// callDAGModule is a command whose _start calls f0, and each f_i of n
// calls f_{i+1} twice (f_{n-1} does nothing): no function can recurse,
// yet one call of _start makes 2^n calls, never looping. Through a table
// (indirect) each f_i calls f_{i+1} with call_indirect instead.
func callDAGModule(n int, indirect bool) []byte {
	bodies := [][]byte{w.Body(nil, []byte{0x10, 0x01, 0x0b})} // _start: call f0
	for i := range n {
		if i == n-1 {
			bodies = append(bodies, w.Body(nil, []byte{0x0b}))
			continue
		}
		next := uint32(i + 2) // function index of f_{i+1}
		var call []byte
		if indirect {
			call = w.Cat([]byte{0x41}, w.S32(int32(next)), []byte{0x11, 0x00, 0x00})
		} else {
			call = w.Cat([]byte{0x10}, w.U32(next))
		}
		bodies = append(bodies, w.Body(nil, w.Cat(call, call, []byte{0x0b})))
	}
	funcs := make([][]byte, n+1)
	elems := make([][]byte, n+1)
	for i := range funcs {
		funcs[i] = w.U32(0)
		elems[i] = w.U32(uint32(i))
	}
	secs := [][]byte{
		w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
		w.Section(w.SecFunction, w.Vec(funcs...)),
	}
	if indirect {
		secs = append(secs, w.Section(w.SecTable, w.Vec(w.Table(uint32(n+1), int64(n+1)))))
	}
	secs = append(secs,
		w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
		w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0))),
	)
	if indirect {
		// One active segment at offset 0 of table 0: every function.
		secs = append(secs, w.Section(w.SecElement, w.Vec(w.Cat(w.U32(0), []byte{0x41, 0x00, 0x0b}, w.Vec(elems...)))))
	}
	secs = append(secs, w.Section(w.SecCode, w.Vec(bodies...)))
	return w.Module(secs...)
}

// Ensure a call tree without recursion, 2^40 calls of functions that
// each call the next twice, directly or through a table, is stopped at its
// timeout: what an unchecked function stands for is counted over its
// callees, so the chain gets entry checks every few levels.
func TestCallDAGStoppedAtTimeout(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "indirect"}[indirect]
		t.Run(name, func(t *testing.T) {
			r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
			m := manifestFor("calldag")
			m.Limits.TimeoutMS = 300
			if err := registerBytes(t, r, m, callDAGModule(41, indirect)); err != nil {
				t.Fatal(err)
			}
			_, err := r.Call(context.Background(), "calldag", CallRequest{})
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 300ms") {
				t.Fatalf("a call tree of 2^40 calls past its timeout: %v; want ErrTimeout", err)
			}
		})
	}
}

// unwindModule is a command whose _start calls f(depth), where f(n)
// calls f(n-1) and then runs reps straight-line increments of a global:
// no loop, and no call after the recursive one, so unwinding the
// recursion runs depth × reps × 4 instructions with no function entry to
// check at.
func unwindModule(depth int32, reps int) []byte {
	start := w.Body(nil, w.Cat([]byte{0x41}, w.S32(depth), []byte{0x10, 0x01, 0x0b}))
	// if n { n-1; call f; reps × (global.get 0; i32.const 1; i32.add; global.set 0) }
	code := []byte{0x20, 0x00, 0x04, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x01}
	for range reps {
		code = append(code, 0x23, 0x00, 0x41, 0x01, 0x6a, 0x24, 0x00)
	}
	code = append(code, 0x0b, 0x0b)
	f := w.Body(nil, code)
	return w.Module(
		w.Section(w.SecType, w.Vec(w.FuncType(nil, nil), w.FuncType([]byte{w.I32}, nil))),
		w.Section(w.SecFunction, w.Vec(w.U32(0), w.U32(1))),
		w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
		w.Section(w.SecGlobal, w.Vec(w.Cat([]byte{w.I32, 0x01, 0x41, 0x00, 0x0b}))),
		w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0))),
		w.Section(w.SecCode, w.Vec(start, f)),
	)
}

// Ensure unwinding a deep recursion is stopped at the timeout too: a
// million frames each running 560,000 straight-line instructions after
// their recursive call (minutes of work, with no function entry to check
// at) end at the call's 300 ms, because a recursive function checks after
// every call back into its cycle. Without that check the call ran on for
// about a minute (measured: 50 s for 70 % of the work); the
// context below ends the test at 30 s.
func TestUnwindStoppedAtTimeout(t *testing.T) {
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	m := manifestFor("unwind")
	m.Limits.TimeoutMS = 300
	if err := registerBytes(t, r, m, unwindModule(1_000_000, 140_000)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.Call(context.Background(), "unwind", CallRequest{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 300ms") {
			t.Fatalf("a deep recursion's unwinding past its timeout: %v; want ErrTimeout", err)
		}
	case <-ctx.Done():
		t.Fatal("the unwinding of a deep recursion ran 30 s past its 300 ms timeout")
	}
}
