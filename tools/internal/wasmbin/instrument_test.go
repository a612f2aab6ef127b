package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	wt "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// checkInstrumented checks Instrument on a module Parse accepted as m: the
// copy parses, has the module's shape plus exactly what Instrument
// appends (one function, one table unless the module has its own, two
// globals, one or two exports, no start section), and every function
// index of the module names the same signature as before.
func checkInstrumented(t *testing.T, m *Module, wasm []byte) []byte {
	t.Helper()
	out, info := m.Instrument(wasm, testLimits.TableElements)
	g, err := Parse(out, Limits{})
	if err != nil {
		t.Fatalf("instrumented module refused: %v", err)
	}
	exports := 1
	if m.HasStart {
		exports = 2
	}
	// A resettable module's mutable globals and the counter are exported
	// too, after the stop flag and the start function.
	if (m.Resettable() == "") != (info.Globals != nil) {
		t.Fatalf("resettable %q, but global exports %v", m.Resettable(), info.Globals)
	}
	exports += len(info.Globals)
	tables := 1
	if len(m.Tables) > 0 {
		tables = 0 // the check grows the module's first table by 0
	}
	if g.HasStart || info.Start != m.HasStart || len(g.Funcs) != len(m.Funcs)+1 || len(g.Imports) != len(m.Imports) ||
		len(g.Tables) != len(m.Tables)+tables || len(g.Globals) != len(m.Globals)+2 || len(g.Exports) != len(m.Exports)+exports ||
		len(g.Customs) != len(m.Customs) || g.DataSegments != m.DataSegments || g.ElemSegments != m.ElemSegments {
		t.Fatalf("Instrument changed the module's shape: %d→%d functions, %d→%d tables, %d→%d globals, %d→%d exports, start %v→%v",
			len(m.Funcs), len(g.Funcs), len(m.Tables), len(g.Tables), len(m.Globals), len(g.Globals), len(m.Exports), len(g.Exports), m.HasStart, g.HasStart)
	}
	for i := range m.importedFuncs + uint32(len(m.Funcs)) {
		a, _ := m.FuncType(i)
		b, _ := g.FuncType(i)
		if !a.Equal(b) {
			t.Fatalf("function %d was %s, is %s", i, a, b)
		}
	}
	for i, e := range m.Exports {
		if g.Exports[i] != e {
			t.Fatalf("export %d was %+v, is %+v", i, e, g.Exports[i])
		}
	}
	if g.Exports[len(m.Exports)] != (Export{Name: StopExport, Kind: KindGlobal, Index: m.importedGlobals + uint32(len(m.Globals))}) {
		t.Fatalf("stop export %+v", g.Exports[len(m.Exports)])
	}
	if m.HasStart && g.Exports[len(m.Exports)+1] != (Export{Name: StartExport, Kind: KindFunc, Index: m.Start}) {
		t.Fatalf("start export %+v", g.Exports[len(m.Exports)+1])
	}
	for i, name := range info.Globals {
		e := g.Exports[len(g.Exports)-len(info.Globals)+i]
		if e.Name != name || e.Kind != KindGlobal || e.Index < g.importedGlobals || !g.Globals[e.Index-g.importedGlobals].Mutable {
			t.Fatalf("global export %d is %+v, want %q of a mutable global", i, e, name)
		}
	}
	if n := len(info.Globals); n > 0 {
		mutable := 0
		for _, gl := range m.Globals {
			if gl.Mutable {
				mutable++
			}
		}
		if n != mutable+1 {
			t.Fatalf("%d global exports for %d mutable globals and the counter", n, mutable)
		}
	}
	// Every loop of the copy begins with the check: i32.const (its
	// weight, 1..ExitBudget) and the call.
	call := appendU32([]byte{0x10}, m.importedFuncs+uint32(len(m.Funcs)))
	for i, f := range g.bodies[:len(g.bodies)-1] {
		for _, l := range f.loops {
			r := &reader{b: out, pos: int(l.at), end: len(out)}
			op, _ := r.byte()
			w, err := r.s33()
			if op != 0x41 || err != nil || w < 1 || w > ExitBudget || !bytes.HasPrefix(out[r.pos:], call) {
				t.Fatalf("body %d: a loop at %#x without the check", i, l.at)
			}
		}
	}
	// Two instructions per check (i32.const, call $check), and the
	// check's own 22.
	if g.Code.Instructions != m.Code.Instructions+2*uint64(info.Checks)+22 {
		t.Fatalf("instrumented module has %d instructions, want %d + 2×%d + 22", g.Code.Instructions, m.Code.Instructions, info.Checks)
	}
	return out
}

// loopModule is a module exporting run (i32) -> i32, which counts its
// argument down in a loop and returns how many iterations it made, and
// a mutable global g; with start, a start section calls run(3); with a
// table type (FuncRef or ExternRef; 0 for none), a table of 2 entries of
// it, which the check then grows by 0 in place of its own.
func loopModule(start bool, table ValType) []byte {
	code := []byte{
		0x03, 0x40, // loop
		0x23, 0x00, 0x41, 0x01, 0x6a, 0x24, 0x00, // g += 1
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, // n -= 1; br_if n
		0x0b, 0x23, 0x00, 0x0b, // end; g
	}
	secs := [][]byte{
		wt.Section(wt.SecType, wt.Vec(wt.FuncType([]byte{wt.I32}, []byte{wt.I32}), wt.FuncType(nil, nil))),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0), wt.U32(1))),
	}
	if table != 0 {
		secs = append(secs, wt.Section(wt.SecTable, wt.Vec(wt.Cat([]byte{byte(table)}, wt.Limits(2, 2)))))
	}
	secs = append(secs,
		wt.Section(wt.SecGlobal, wt.Vec([]byte{wt.I32, 0x01, 0x41, 0x00, 0x0b})),
		wt.Section(wt.SecExport, wt.Vec(wt.Export("run", 0, 0), wt.Export("g", 3, 0))),
	)
	if start {
		secs = append(secs, wt.Section(wt.SecStart, wt.U32(1)))
	}
	secs = append(secs, wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, code), wt.Body(nil, []byte{0x41, 0x03, 0x10, 0x00, 0x1a, 0x0b}))))
	return wt.Module(secs...)
}

// Ensure the instrumented copy runs as the module did, stops with a trap
// at its next loop iteration once the host sets the flag, and runs again
// once it is cleared; and that the start section is moved to StartExport;
// with no table, a funcref or an externref table of the module's own
// (which the check's table.grow by 0 then uses).
func TestInstrumentStops(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for i := range 6 {
		start, table := i%2 == 1, []ValType{0, FuncRef, ExternRef}[i/2]
		wasm := loopModule(start, table)
		m, err := Parse(wasm, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		out := checkInstrumented(t, m, wasm)
		mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		g := mod.ExportedGlobal("g")
		if g.Get() != 0 {
			t.Fatalf("start %v: g = %d before any call: the start section ran inside the instantiation", start, g.Get())
		}
		if f := mod.ExportedFunction(StartExport); (f != nil) != start {
			t.Fatalf("start %v: StartExport exported: %v", start, f != nil)
		} else if f != nil {
			if _, err := f.Call(ctx); err != nil || g.Get() != 3 {
				t.Fatalf("start section: %v, g = %d", err, g.Get())
			}
		}
		run := mod.ExportedFunction("run")
		res, err := run.Call(ctx, 5000) // past ExitBudget: the table.grow path runs
		if err != nil || uint32(res[0]) != uint32(g.Get()) {
			t.Fatalf("run(5000): %v %v", res, err)
		}
		stop := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
		stop.Set(1)
		if _, err := run.Call(ctx, 10); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("run with the flag set: %v; want the check's trap", err)
		}
		stop.Set(0)
		if _, err := run.Call(ctx, 10); err != nil {
			t.Fatalf("run once the flag is cleared: %v", err)
		}
		mod.Close(ctx)
	}
}

// Ensure an endless loop (`loop br 0`) and an endless call tree of the
// instrumented copy stop when another goroutine sets the flag, with no
// close-on-context-done: the guest's own check does it.
func TestInstrumentStopsEndless(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cases := map[string][]byte{
		"loop": wt.Command(1, nil, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}),
		// _start calls itself twice: 2^n calls, never looping.
		"tree": wt.Command(1, nil, []byte{0x10, 0x00, 0x10, 0x00, 0x0b}),
	}
	for name, wasm := range cases {
		m, err := Parse(wasm, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		out := checkInstrumented(t, m, wasm)
		mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		stop := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
		timer := time.AfterFunc(50*time.Millisecond, func() { stop.Set(1) })
		_, err = mod.ExportedFunction("_start").Call(ctx)
		timer.Stop()
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("%s: %v; want the check's trap", name, err)
		}
		mod.Close(ctx)
	}
}

// Ensure Instrument creates the sections a module lacks, in order: a
// module with no section at all, and one whose only function is an
// imported one it exports, compile once instrumented.
func TestInstrumentCreatesSections(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	for name, wasm := range map[string][]byte{
		"empty": wt.Module(),
		"reexport": wt.Module(
			wt.Section(wt.SecType, wt.Vec(wt.FuncType([]byte{wt.I32}, nil))),
			wt.Section(wt.SecImport, wt.Vec(wt.ImportFunc("wasi_snapshot_preview1", "proc_exit", 0))),
			wt.Section(wt.SecExport, wt.Vec(wt.Export("exit", 0, 0))),
			wt.Section(wt.SecCustom, wt.Name("x"), []byte{1, 2}),
		),
		"datacount": wt.Module(
			wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1))),
			wt.Section(wt.SecDataCount, wt.U32(1)),
			wt.Section(wt.SecData, wt.Vec(wt.Cat(wt.U32(1), wt.Vec([]byte{7})))),
		),
	} {
		m, err := Parse(wasm, testLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := checkInstrumented(t, m, wasm)
		cm, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s: wazero refused the instrumented copy: %v\n%x", name, err, out)
		}
		cm.Close(ctx)
	}
}

// Ensure no guest index can name what Instrument appends: an index of the
// module's own code, exports, element segments, start section or
// constant expressions at or past the module's own count is refused
// (wazero refuses it in the module as uploaded; in the instrumented copy
// it would name the stop flag, the counter, the check or its table).
func TestParseRefusesForeignIndices(t *testing.T) {
	global := wt.Section(wt.SecGlobal, wt.Vec([]byte{wt.I32, 0x01, 0x41, 0x00, 0x0b}))
	table := wt.Section(wt.SecTable, wt.Vec(wt.Table(1, 1)))
	cases := map[string][]byte{
		"global.set of the stop flag":  wt.Command(1, nil, []byte{0x41, 0x00, 0x24, 0x01, 0x0b}, global),
		"global.get of the counter":    wt.Command(1, nil, []byte{0x23, 0x02, 0x1a, 0x0b}, global),
		"call of the check":            wt.Command(1, nil, []byte{0x10, 0x01, 0x0b}),
		"ref.func of the check":        wt.Command(1, nil, []byte{0xd2, 0x01, 0x1a, 0x0b}),
		"table.grow of its table":      wt.Command(1, nil, []byte{0xd0, 0x70, 0x41, 0x00, 0xfc, 0x0f, 0x01, 0x1a, 0x0b}, table),
		"table.size of its table":      wt.Command(1, nil, []byte{0xfc, 0x10, 0x00, 0x1a, 0x0b}),
		"table.get of its table":       wt.Command(1, nil, []byte{0x41, 0x00, 0x25, 0x01, 0x1a, 0x0b}, table),
		"call_indirect through it":     wt.Command(1, nil, []byte{0x41, 0x00, 0x11, 0x00, 0x01, 0x0b}, table),
		"table.copy into it":           wt.Command(1, nil, []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0e, 0x01, 0x00, 0x0b}, table),
		"an element naming the check":  wt.Command(1, nil, []byte{0x0b}, table, wt.Section(wt.SecElement, wt.Vec(wt.Cat(wt.U32(0), []byte{0x41, 0x00, 0x0b}, wt.Vec(wt.U32(1)))))),
		"a segment into its table":     wt.Command(1, nil, []byte{0x0b}, table, wt.Section(wt.SecElement, wt.Vec(wt.Cat(wt.U32(2), wt.U32(1), []byte{0x41, 0x00, 0x0b, 0x00}, wt.Vec(wt.U32(0)))))),
		"a global initialised from it": wt.Command(1, nil, []byte{0x0b}, wt.Section(wt.SecGlobal, wt.Vec([]byte{wt.I32, 0x00, 0x23, 0x00, 0x0b}))),
		"an export of the stop flag": wt.Module(
			wt.Section(wt.SecGlobal, wt.Vec([]byte{wt.I32, 0x01, 0x41, 0x00, 0x0b})),
			wt.Section(wt.SecExport, wt.Vec(wt.Export("flag", 3, 1))),
		),
		"a start section naming the check": wt.Module(wt.Section(wt.SecStart, wt.U32(0))),
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	for name, wasm := range cases {
		_, err := Parse(wasm, testLimits)
		var pe *Error
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "the module has") {
			t.Errorf("%s: %v; want ErrMalformed naming the module's count", name, err)
		}
		// The premise: wazero refuses each of them too.
		if cm, err := rt.CompileModule(ctx, wasm); err == nil {
			cm.Close(ctx)
			t.Errorf("%s: wazero accepts it", name)
		}
	}
}

// instrumentedCompiles checks, for FuzzParse, that a module Parse and
// wazero accept still compiles in wazero once instrumented, with the
// shape checkInstrumented checks.
func instrumentedCompiles(t *testing.T, m *Module, wasm []byte) {
	ctx := context.Background()
	rt := fuzzRuntime()
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return // not a module wazero runs: nothing to keep
	}
	cm.Close(ctx)
	out := checkInstrumented(t, m, wasm)
	cm, err = rt.CompileModule(ctx, out)
	if err != nil {
		t.Fatalf("wazero compiles the module but not its instrumented copy: %v\n%x", err, wasm)
	}
	cm.Close(ctx)
	if bytes.Equal(out, wasm) {
		t.Fatal("Instrument returned the module unchanged")
	}
}

// fuzzRuntime is the interpreter runtime FuzzParse compiles with (its
// validation is wazero's, shared by both engines; it compiles faster).
var fuzzRuntime = sync.OnceValue(func() wazero.Runtime {
	return wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
})

// Ensure each check weighs at least what runs until the next one: a loop
// the instructions written inside it and what its calls cost (nothing for
// a callee that checks by itself),
// the loop every entry passes first the whole body, and a loop whose
// iteration is heavier than ExitBudget exits to Go at every iteration.
// With one flat count per check (the first version), a loop of a million
// straight-line instructions would run a thousand iterations between two
// safe points.
func TestInstrumentWeighsChecks(t *testing.T) {
	pairs := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, 0x41, 0x00, 0x1a) // i32.const 0 drop
		}
		return b
	}
	loop := func(body ...[]byte) []byte {
		b := []byte{0x03, 0x40}
		for _, p := range body {
			b = append(b, p...)
		}
		return append(b, 0x0b)
	}
	// f0: a loop of 100 pairs; f1: an if (so not every entry passes the
	// loop first), then a loop with a call of f0 (which checks by itself),
	// a call of f4 (20 pairs, no loop: it costs its 41 instructions) and
	// 10 pairs, then 50 pairs; f2: a loop of 40,000 pairs;
	// f3: a loop first (every entry passes it), then 30 pairs after it.
	f0 := append(loop(pairs(100)), 0x0b)
	f1 := append(append(append(append([]byte{0x41, 0x01, 0x04, 0x40, 0x0b}, pairs(5)...), loop([]byte{0x10, 0x00, 0x10, 0x04}, pairs(10))...), pairs(50)...), 0x0b)
	f2 := append(loop(pairs(40000)), 0x0b)
	f3 := append(append(loop(pairs(3)), pairs(30)...), 0x0b)
	f4 := append(pairs(20), 0x0b)
	wasm := wt.Module(
		wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0), wt.U32(0), wt.U32(0), wt.U32(0), wt.U32(0))),
		wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, f0), wt.Body(nil, f1), wt.Body(nil, f2), wt.Body(nil, f3), wt.Body(nil, f4))),
	)
	m, err := Parse(wasm, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	out := checkInstrumented(t, m, wasm)
	g, err := Parse(out, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	weight := func(fn int) int64 {
		l := g.bodies[fn].loops[0]
		r := &reader{b: out, pos: int(l.at) + 1, end: len(out)}
		w, _ := r.s33()
		return w
	}
	for _, c := range []struct {
		fn       int
		min, max int64
	}{
		{0, 200, 210},
		{1, 23 + 41, 30 + 41},
		{2, ExitBudget, ExitBudget},
		{3, 66, 80}, // the whole body: 3 pairs inside, 30 after
	} {
		if w := weight(c.fn); w < c.min || w > c.max {
			t.Errorf("function %d: its loop's check weighs %d, want %d..%d", c.fn, w, c.min, c.max)
		}
	}
	if !m.bodies[3].entryChecked || m.bodies[1].entryChecked {
		t.Fatal("function 3, not function 1, should pass its loop at every entry")
	}
}

// Ensure Parse and Instrument together allocate a small multiple of what
// they are given, for the shapes that make the rewrite grow most: a module
// of nothing but calls (a check after each of the recursive function's,
// one at each other function's entry) and one of nothing but loops (a
// check, up to 11 bytes, in each 3-byte loop).
func TestInstrumentAllocationBound(t *testing.T) {
	shapes := map[string][]byte{"calls": {0x10, 0x00}, "loops": {0x03, 0x40, 0x0b}}
	for name, unit := range shapes {
		code := make([]byte, 0, 1<<20)
		for len(code) < 1<<20-4 {
			code = append(code, unit...)
		}
		code = append(code, 0x0b)
		bodies := make([][]byte, 4)
		funcs := make([][]byte, 4)
		for i := range bodies {
			bodies[i], funcs[i] = wt.Body(nil, code), wt.U32(0)
		}
		wasm := wt.Module(wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))), wt.Section(wt.SecFunction, wt.Vec(funcs...)), wt.Section(wt.SecCode, wt.Vec(bodies...)))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, err := Parse(wasm, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		out, info := m.Instrument(wasm, 1<<20)
		runtime.ReadMemStats(&after)
		if info.Checks == 0 || len(out) <= len(wasm) {
			t.Fatalf("%s: %d checks", name, info.Checks)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: a module of %d bytes: Parse and Instrument allocated %d MiB (%.1f×), the copy is %.1f× the module", name, len(wasm), alloc>>20, float64(alloc)/float64(len(wasm)), float64(len(out))/float64(len(wasm)))
		if alloc > 24*uint64(len(wasm)) {
			t.Fatalf("%s: allocated %d bytes for a module of %d", name, alloc, len(wasm))
		}
	}
}
