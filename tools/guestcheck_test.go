package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
	w "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// endless is `loop br 0 end`, then the body's end.
var endless = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}

// reactorModule is a reactor exporting nanovm_call (() -> i32, code
// call) and _initialize (code init), with a third function (code extra)
// that a start section calls when start is set.
func reactorModule(call, init, extra []byte, start bool) []byte {
	secs := [][]byte{
		w.Section(w.SecType, w.Vec(w.FuncType(nil, nil), w.FuncType(nil, []byte{w.I32}))),
		w.Section(w.SecFunction, w.Vec(w.U32(1), w.U32(0), w.U32(0))),
		w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
		w.Section(w.SecExport, w.Vec(w.Export("nanovm_call", 0, 0), w.Export("_initialize", 0, 1), w.Export("memory", 2, 0))),
	}
	if start {
		secs = append(secs, w.Section(w.SecStart, w.U32(2)))
	}
	secs = append(secs, w.Section(w.SecCode, w.Vec(w.Body(nil, call), w.Body(nil, init), w.Body(nil, extra))))
	return w.Module(secs...)
}

// commandStartModule is a command whose _start does nothing and whose
// start section runs code.
func commandStartModule(code []byte) []byte {
	return w.Module(
		w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
		w.Section(w.SecFunction, w.Vec(w.U32(0), w.U32(0))),
		w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
		w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0))),
		w.Section(w.SecStart, w.U32(1)),
		w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}), w.Body(nil, code))),
	)
}

var returnZero = []byte{0x41, 0x00, 0x0b}

// Ensure an endless loop in a start section, in _initialize and in _start
// stops at the call's timeout, fresh and pooled: they run inside wazero's
// instantiation, before the host could reach the instance's stop flag,
// unless the host runs them itself once the flag is armed.
func TestStartFunctionsStoppedAtTimeout(t *testing.T) {
	cases := []struct {
		name   string
		wasm   []byte
		pooled bool
	}{
		{"command start section", commandStartModule(endless), false},
		{"command _start", w.Command(1, nil, endless), false},
		{"reactor start section", reactorModule(returnZero, []byte{0x0b}, endless, true), false},
		{"reactor _initialize", reactorModule(returnZero, endless, []byte{0x0b}, false), false},
		{"pooled start section", reactorModule(returnZero, []byte{0x0b}, endless, true), true},
		{"pooled _initialize", reactorModule(returnZero, endless, []byte{0x0b}, false), true},
		// nanovm_call: loop br 0 end, then unreachable for its i32.
		{"pooled nanovm_call", reactorModule([]byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00, 0x0b}, []byte{0x0b}, []byte{0x0b}, false), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
			m := manifestFor("endless")
			m.Limits.TimeoutMS = 200
			if c.pooled {
				m.Isolation = IsolationPool
			}
			if err := registerBytes(t, r, m, c.wasm); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := r.Call(context.Background(), "endless", CallRequest{})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 200ms") {
					t.Fatalf("an endless loop: %v; want ErrTimeout after 200ms", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("an endless loop ran 30 s past its 200 ms timeout")
			}
		})
	}
}

// Ensure the garbage collector (which must stop every goroutine) runs to
// its end while a guest runs an endless tight loop or an endless call tree
// under a long timeout, fresh and pooled: the guest's check exits to Go
// every wasmbin.ExitBudget instructions or so, where its goroutine can be stopped.
// Without those exits the collection waits for the guest's timeout, and
// the guest's call ends first.
func TestCollectorRunsBesideEndlessGuest(t *testing.T) {
	cases := []struct {
		name   string
		wasm   []byte // nil: the bundled calltree
		pooled bool
	}{
		{"loop fresh", w.Command(1, nil, endless), false},
		{"loop pooled", reactorModule([]byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00, 0x0b}, []byte{0x0b}, []byte{0x0b}, false), true},
		{"calltree fresh", nil, false},
		{"calltree pooled", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, HostOptions{})
			r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
			name := "endless"
			if c.wasm == nil {
				name = "calltree"
				register(t, r, "calltree", func(m *Manifest) {
					if c.pooled {
						m.Isolation = IsolationPool
					}
				})
			} else {
				m := manifestFor(name)
				if c.pooled {
					m.Isolation = IsolationPool
				}
				if err := registerBytes(t, r, m, c.wasm); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := r.Call(ctx, name, CallRequest{Timeout: 2 * time.Minute})
				done <- err
			}()
			// The guard: the call holds its slot of the calls in flight,
			// and has had time to enter its loop.
			for len(h.calls) == 0 {
				runtime.Gosched()
			}
			time.Sleep(100 * time.Millisecond)
			collected := make(chan struct{})
			go func() {
				for range 3 {
					runtime.GC()
				}
				close(collected)
			}()
			select {
			case <-collected:
			case err := <-done:
				t.Fatalf("the guest's call ended (%v) before a collection beside it could", err)
			}
			select {
			case err := <-done:
				t.Fatalf("the guest's call ended (%v) before its cancel", err)
			default:
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("the cancelled call: %v; want context.Canceled", err)
			}
		})
	}
}

// Ensure a pooled instance whose previous call timed out, or ended at its
// deadline, never fails the next call: the deadline's timer of a call
// that fires late finds another generation armed and leaves the flag
// alone, and each call clears the flag before it runs. Two goroutines
// share a pool of two; each alternates a call with a timeout of a few
// microseconds (which may time out) and one of ten seconds (which must
// not), while every stop reaches its flag 300 µs late (lateStop), when
// the instance serves the next call. Run it under -race too.
func TestPooledNextCallNotStoppedByLateTimer(t *testing.T) {
	late := func() { time.Sleep(300 * time.Microsecond) }
	lateStop.Store(&late)
	defer lateStop.Store(nil)
	r := newRegistry(t, "get_order_amount")
	register(t, r, "get_order_amount", func(m *Manifest) {
		m.Name = "goa_pooled"
		m.Isolation = IsolationPool
		m.PoolSize = 2
	})
	args := map[string]any{"order_id": "o-1"}
	n := 1500
	if testing.Short() {
		n = 300
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				short := time.Duration(1+(i*7+g*3)%40) * time.Microsecond
				if _, err := r.Call(context.Background(), "goa_pooled", CallRequest{Args: args, Timeout: short}); err != nil && !errors.Is(err, ErrTimeout) {
					errs <- fmt.Errorf("call %d with timeout %s: %w", i, short, err)
					return
				}
				if _, err := r.Call(context.Background(), "goa_pooled", CallRequest{Args: args, Timeout: 10 * time.Second}); err != nil {
					errs <- fmt.Errorf("call %d after one of timeout %s: %w", i, short, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Ensure a module cannot reach the stop flag by name: one that exports a
// name the host reserves for the instrumented copy is refused, as is one
// that imports a global of that name (the host offers no global), and
// one whose code names a global past its own (the flag's index in the
// copy).
func TestStopFlagOutOfGuestReach(t *testing.T) {
	r := newRegistry(t)
	global := w.Section(w.SecGlobal, w.Vec([]byte{w.I32, 0x01, 0x41, 0x00, 0x0b}))
	cases := map[string]struct {
		wasm []byte
		kind error
		want string
	}{
		"export of the reserved stop name": {w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
			global,
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0), w.Export(wasmbin.StopExport, 3, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), ErrInvalidModule, "names starting \"nanovm:guard/\" are the host's"},
		"export of the reserved start name": {w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0), w.Export(wasmbin.StartExport, 0, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), ErrInvalidModule, "are the host's"},
		"import of a global of the reserved name": {w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecImport, w.Vec(w.Cat(w.Name("nanovm"), w.Name(wasmbin.StopExport), []byte{0x03, w.I32, 0x01}))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0), w.Export("memory", 2, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x41, 0x00, 0x24, 0x00, 0x0b}))),
		), nil, "global"},
		"global.set past its own globals": {w.Command(1, nil, []byte{0x41, 0x00, 0x24, 0x01, 0x0b}, global), ErrInvalidModule, "the module has 1"},
	}
	for name, c := range cases {
		err := registerBytes(t, r, manifestFor("reach"), c.wasm)
		if err == nil || (c.kind != nil && !errors.Is(err, c.kind)) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a refusal (%v) saying %q", name, err, c.kind, c.want)
		}
	}
}

// Ensure every committed module (the bundled tools and the test tools)
// does the same once instrumented as it does as uploaded: each runs on a
// bare runtime, both ways, with the same inputs, the same deterministic
// clocks and random source, and the same stubs for what it imports beyond
// WASI (every stub returns zeros), and writes the same stdout and stderr
// and ends the same way. Modules that run past 300 ms (the endless test
// tools) end the same way too: both time out, under wazero's own
// close-on-context-done.
func TestInstrumentedToolsAgree(t *testing.T) {
	inputs := []string{`{}`, `{"order_id":"o-1"}`, `{"order_id":"o-2","amount":12.5,"currency":"EUR","reason":"damaged","customer":"c-1","email":"a@b.c","text":"hello"}`, `not json`}
	// Tools that exhaust memory, tables or output do so only under the
	// host's ceilings, which a bare runtime does not have.
	bombs := map[string]bool{"membomb": true, "memhold": true, "memtouch": true, "table_huge": true, "table_grow": true, "table_fill": true, "flood": true, "extism_hog": true}
	for name, mod := range modules(t) {
		if bombs[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			pm, err := wasmbin.Parse(mod.Wasm, wasmbin.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			inst, _ := pm.Instrument(mod.Wasm, 1<<20)
			// As uploaded, but with GuardCalls' empty loops (no-ops), so
			// that wazero's close-on-context-done stops a call tree too.
			orig, _ := pm.GuardCalls(mod.Wasm)
			ra, rb := newBare(t, pm, orig), newBare(t, pm, inst)
			for _, in := range inputs {
				a := ra.run(t, pm, in, false)
				b := rb.run(t, pm, in, true)
				if runaway(a) != runaway(b) {
					t.Fatalf("input %s:\nas uploaded:  %s\ninstrumented: %s", in, a, b)
				}
				if in == inputs[1] {
					t.Logf("%s: %s", in, jsonlimit.Excerpt(a, 300))
				}
			}
		})
	}
}

// runaway reads an endless recursion's two possible endings as one: it
// overflows the stack or times out, whichever comes first, and on a loaded
// machine that differs from run to run (and the instrumented copy's
// frames are larger).
func runaway(outcome string) string {
	return strings.ReplaceAll(outcome, "stack overflow", "timed out")
}

// bare is a bare runtime with WASI, zero-returning stubs of what a
// module imports beyond it, and the module compiled.
type bare struct {
	rt   wazero.Runtime
	code wazero.CompiledModule
}

func newBare(t *testing.T, pm *wasmbin.Module, wasm []byte) *bare {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithMemoryLimitPages(1024))
	t.Cleanup(func() { rt.Close(ctx) })
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	stubs := map[string]wazero.HostModuleBuilder{}
	for _, im := range pm.Imports {
		if im.Kind != wasmbin.KindFunc || im.Module == "wasi_snapshot_preview1" {
			continue
		}
		b, ok := stubs[im.Module]
		if !ok {
			b = rt.NewHostModuleBuilder(im.Module)
			stubs[im.Module] = b
		}
		conv := func(ts []wasmbin.ValType) []api.ValueType {
			out := make([]api.ValueType, len(ts))
			for i, v := range ts {
				out[i] = api.ValueType(v)
			}
			return out
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			clear(stack)
		}), conv(im.Func.Params), conv(im.Func.Results)).Export(im.Name)
	}
	for name, b := range stubs {
		if _, err := b.Instantiate(ctx); err != nil {
			t.Fatalf("stub %s: %v", name, err)
		}
	}
	code, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return &bare{rt: rt, code: code}
}

// run runs the module (instrumented: its start section moved) with stdin
// in, for at most 300 ms, and says how it went.
func (r *bare) run(t *testing.T, pm *wasmbin.Module, in string, instrumented bool) string {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().WithName("").WithArgs("tool").WithStdin(strings.NewReader(in)).
		WithStdout(&stdout).WithStderr(&stderr).WithStartFunctions()
	mod, err := r.rt.InstantiateModule(ctx, r.code, cfg)
	outcome := func(what string, err error) string {
		msg := "ok"
		if err != nil {
			msg = trapReason(err.Error())
			if ctx.Err() != nil {
				msg = "timed out"
			}
		}
		return fmt.Sprintf("%s: %s; stdout %q; stderr %q", what, msg, stdout.String(), stderr.String())
	}
	if err != nil {
		return outcome("start section", err)
	}
	defer mod.Close(context.Background())
	if instrumented {
		// The copy has no loop where GuardCalls put one: its own check
		// stops it, once its flag is set.
		stop := mod.ExportedGlobal(wasmbin.StopExport).(api.MutableGlobal)
		var mu sync.Mutex
		defer context.AfterFunc(ctx, func() { mu.Lock(); stop.Set(1); mu.Unlock() })()
	}
	seq := []string{"_start", "_initialize", "nanovm_call", "describe", "list_tools"}
	if instrumented {
		seq = append([]string{wasmbin.StartExport}, seq...)
	}
	var res []string
	for _, fn := range seq {
		f := mod.ExportedFunction(fn)
		if f == nil || len(f.Definition().ParamTypes()) > 0 {
			continue
		}
		out, err := f.Call(ctx)
		what := fn
		if fn == wasmbin.StartExport {
			what = "start section"
		}
		if err != nil {
			return strings.Join(append(res, outcome(what, err)), ", ")
		}
		if what != "start section" {
			res = append(res, fmt.Sprintf("%s -> %v", what, out))
		}
	}
	return strings.Join(append(res, outcome("end", nil)), ", ")
}

// Ensure a deadline that ends as its call ends, and whose stop reaches
// the flag only once the instance serves the next call, leaves that call
// alone: the stop names the generation of its own call. (Without the
// generation, the next call trapped.)
func TestLateStopLeavesNextCallAlone(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, w.Module(
		w.Section(w.SecGlobal, w.Vec([]byte{w.I32, 0x01, 0x41, 0x00, 0x0b})),
		w.Section(w.SecExport, w.Vec(w.Export(wasmbin.StopExport, 3, 0))),
	))
	if err != nil {
		t.Fatal(err)
	}
	s := &stopper{}
	if err := s.bind(mod); err != nil {
		t.Fatal(err)
	}
	gen := s.arm()
	d := newDeadline(context.Background(), time.Hour)
	d.watch(s, gen)
	reached, gate := make(chan struct{}), make(chan struct{})
	late := func() { close(reached); <-gate }
	lateStop.Store(&late)
	defer lateStop.Store(nil)
	done := make(chan struct{})
	go func() { d.cancel(context.DeadlineExceeded); close(done) }()
	<-reached
	// The call ends; the instance serves the next one.
	s.disarm()
	s.arm()
	close(gate)
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flag.Get() != 0 {
		t.Fatal("a late stop of the previous call set the flag of the next one")
	}
}

// Ensure closing the host stops a guest running an endless loop under a
// long timeout, as wazero's close of every module did with
// close-on-context-done: Close sets the flag of every armed instance.
func TestHostCloseStopsRunningGuest(t *testing.T) {
	h, err := NewHost(context.Background(), HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	if err := registerBytes(t, r, manifestFor("endless"), w.Command(1, nil, endless)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Call(context.Background(), "endless", CallRequest{Timeout: 2 * time.Minute})
		done <- err
	}()
	for len(h.calls) == 0 {
		runtime.Gosched()
	}
	time.Sleep(50 * time.Millisecond) // the guard above: in flight; now in its loop
	_ = h.Close(context.Background())
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stopped call succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a guest ran on 30 s after its host closed")
	}
}

// Ensure a parent's cancel stops every guest running under it at once,
// fresh and pooled (the calls share one watch of the parent, a
// parentWatch), and no guest under another parent: six endless loops
// under one cancelled parent all end with context.Canceled while the one
// beside them, under a parent of its own, runs on until its own cancel.
func TestParentCancelStopsEveryCallUnderIt(t *testing.T) {
	h := newHost(t, HostOptions{Ceilings: Ceilings{CallsInFlight: 8, CallsInFlightPerSession: 8}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	if err := registerBytes(t, r, manifestFor("endless"), w.Command(1, nil, endless)); err != nil {
		t.Fatal(err)
	}
	pooled := manifestFor("endless_pooled")
	pooled.Isolation, pooled.PoolSize = IsolationPool, 2
	if err := registerBytes(t, r, pooled, reactorModule([]byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00, 0x0b}, []byte{0x0b}, []byte{0x0b}, false)); err != nil {
		t.Fatal(err)
	}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	call := func(ctx context.Context, name string, done chan<- error) {
		go func() {
			_, err := r.Call(ctx, name, CallRequest{Timeout: 2 * time.Minute})
			done <- err
		}()
	}
	done := make(chan error, 6)
	for _, name := range []string{"endless", "endless", "endless", "endless", "endless_pooled", "endless_pooled"} {
		call(parent, name, done)
	}
	otherDone := make(chan error, 1)
	call(other, "endless", otherDone)
	for len(h.calls) < 7 {
		runtime.Gosched()
	}
	time.Sleep(100 * time.Millisecond) // in flight; now in their loops
	cancel()
	for i := range 6 {
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("call %d under the cancelled parent: %v; want context.Canceled", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of the 6 guests under the cancelled parent ran on 30 s after its cancel", 6-i)
		}
	}
	select {
	case err := <-otherDone:
		t.Fatalf("the call under another parent ended (%v) with the cancel of this one", err)
	default:
	}
	cancelOther()
	if err := <-otherDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the call under the other parent: %v; want context.Canceled", err)
	}
}
