package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	wt "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// Hostile modules, built byte by byte (wasmtest) so that the tests need
// no toolchain. Each is a WASI-command-shaped module: _start and memory.

// tableModule declares one funcref table of min entries (max < 0: none).
func tableModule(min uint32, max int64, code []byte) []byte {
	return wt.Command(1, nil, code, wt.Section(wt.SecTable, wt.Vec(wt.Table(min, max))))
}

// tableGrowCode grows table 0 by delta. If table.grow returned -1 (the
// spec's failure) the guest traps on unreachable; if it grew, the guest
// traps on a division by zero instead, so the call's error says which.
func tableGrowCode(delta uint32) []byte {
	return wt.Cat(
		[]byte{0xd0, wt.FuncRef},           // ref.null func
		[]byte{0x41}, wt.S32(int32(delta)), // i32.const delta
		[]byte{0xfc, 0x0f, 0x00},                   // table.grow 0
		[]byte{0x41, 0x7f, 0x46},                   // i32.const -1; i32.eq
		[]byte{0x04, 0x40, 0x00, 0x0b},             // if unreachable end
		[]byte{0x41, 0x01, 0x41, 0x00, 0x6e, 0x1a}, // 1 / 0; drop
		[]byte{0x0b})
}

func manifestFor(name string) Manifest {
	return Manifest{Name: name, Description: "hostile module " + name}
}

func registerBytes(t *testing.T, r *Registry, m Manifest, wasm []byte) error {
	t.Helper()
	_, err := r.Register(context.Background(), m, wasm)
	return err
}

// Ensure a table declared beyond the table ceiling is refused at
// registration, naming the table and the ceiling, and nothing is stored.
// (Before: registered, and each instance allocated 2^27 × 8 bytes.)
func TestTableDeclaredTooBigRefused(t *testing.T) {
	r := newRegistry(t)
	err := registerBytes(t, r, manifestFor("big_table"), tableModule(1<<27, -1, []byte{0x0b}))
	if !errors.Is(err, ErrModuleLimit) || !strings.Contains(err.Error(), "table 0 declares 134217728 elements at start, ceiling is 1000000") {
		t.Fatalf("err = %v", err)
	}
	if _, err := r.Get(context.Background(), "big_table"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused module was stored: %v", err)
	}
}

// Ensure table.grow past the table ceiling returns -1 inside the guest (the
// module declared no maximum; the host gave it one) and the call fails
// with the guest's own trap. (Before: the table grew without bound.)
func TestTableGrowHeldToCeiling(t *testing.T) {
	h := newHost(t, HostOptions{ModuleLimits: ModuleLimits{TableElements: 1000}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	if err := registerBytes(t, r, manifestFor("grow"), tableModule(1, -1, tableGrowCode(1000))); err != nil {
		t.Fatal(err)
	}
	_, err := r.Call(context.Background(), "grow", CallRequest{})
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want the guest to see table.grow fail (-1) and trap on unreachable", err)
	}
	// Within the ceiling, the same grow succeeds.
	if err := registerBytes(t, r, manifestFor("grow_ok"), tableModule(1, -1, tableGrowCode(999))); err != nil {
		t.Fatal(err)
	}
	_, err = r.Call(context.Background(), "grow_ok", CallRequest{})
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "divide by zero") {
		t.Fatalf("err = %v, want the grow to succeed", err)
	}
}

// Ensure the bytes of tables at their maximum count against the memory
// ceiling with the memory's declared minimum, and a module that cannot fit
// is refused naming its tables.
func TestTableBytesCountAgainstMemory(t *testing.T) {
	r := newRegistry(t)
	m := manifestFor("tables")
	m.Limits.MemoryMiB = 4
	// 1,000,000 entries × 8 bytes (no maximum declared) + 64 KiB > 4 MiB.
	err := registerBytes(t, r, m, tableModule(10, -1, []byte{0x0b}))
	want := "module needs 64 KiB of memory at start and up to 7812 KiB for its tables (table 0: 10 entries at start, up to 1000000 (declares no maximum, ceiling 1000000)), memory limit is 4 MiB"
	if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	// A declared maximum is kept, and fits.
	if err := registerBytes(t, r, m, tableModule(10, 100, []byte{0x0b})); err != nil {
		t.Fatal(err)
	}
	tool, err := r.Resolve(context.Background(), "tables")
	if err != nil {
		t.Fatal(err)
	}
	if tool.mod.tableBytes != 800 {
		t.Fatalf("tableBytes = %d, want 800", tool.mod.tableBytes)
	}
}

// Ensure a tiny module declaring tens of millions of locals is refused
// before it is compiled, allocating next to nothing. (Before: wazero
// allocated per local, and the compiler over 1 GB.)
func TestLocalsBombRefusedCheaply(t *testing.T) {
	r := newRegistry(t)
	wasm := wt.Command(1, [][]byte{wt.Local(50_000_000, wt.I32)}, []byte{0x0b})
	if len(wasm) > 150 {
		t.Fatalf("module is %d bytes", len(wasm))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := registerBytes(t, r, manifestFor("locals"), wasm)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrModuleLimit) || !strings.Contains(err.Error(), "function 0 declares 50000000 locals, ceiling is 50000") {
		t.Fatalf("err = %v", err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("refusing a %d-byte module declaring 50,000,000 locals allocated %d bytes", len(wasm), alloc)
	if alloc > 1<<20 {
		t.Fatalf("refusal allocated %d bytes", alloc)
	}
}

// Ensure the per-function complexity ceilings refuse, naming the function
// and the ceiling, before anything is compiled.
func TestComplexityCeilings(t *testing.T) {
	brTable := func(n int) []byte {
		targets := make([][]byte, n)
		for i := range targets {
			targets[i] = wt.U32(0)
		}
		return wt.Cat([]byte{0x02, 0x40, 0x41, 0x00, 0x0e}, wt.Vec(targets...), wt.U32(0), []byte{0x0b, 0x0b})
	}
	nest := func(n int) []byte {
		return wt.Cat(bytes.Repeat([]byte{0x02, 0x40}, n), bytes.Repeat([]byte{0x0b}, n+1))
	}
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"huge br_table", wt.Command(1, nil, brTable(40_000)), "function 0 has br_tables of 40001 targets in all, ceiling is 32768"},
		{"br_tables adding up", wt.Command(1, nil, wt.Cat(bytes.Repeat(brTable(20_000)[:len(brTable(20_000))-1], 2), []byte{0x0b})), "ceiling is 32768"},
		{"deep nesting", wt.Command(1, nil, nest(5000)), "function 0 nests blocks 4097 deep, ceiling is 4096"},
		{"huge body", wt.Command(1, nil, wt.Cat(bytes.Repeat([]byte{0x01}, 1<<20), []byte{0x0b})), "function 0 body is 1048578 bytes, ceiling is 1048576"},
		{"too big", tableModule(1, 1, wt.Cat([]byte{0x0b})), "module is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := HostOptions{}
			if tt.name == "too big" {
				opts.ModuleLimits.ModuleBytes = 32
			}
			r := NewRegistry(newHost(t, opts), NewMemoryStore(), RegistryOptions{})
			err := registerBytes(t, r, manifestFor("complex"), tt.wasm)
			if !errors.Is(err, ErrModuleLimit) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Ensure the compile deadline and the caller's context stop a
// compilation, and a waiting registration gives up when its context ends.
func TestCompileDeadlineAndCancel(t *testing.T) {
	wasm := modules(t)["validate_amount"].Wasm
	m, err := ParseManifest(modules(t)["validate_amount"].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("deadline", func(t *testing.T) {
		r := NewRegistry(newHost(t, HostOptions{ModuleLimits: ModuleLimits{CompileTimeout: time.Nanosecond}}), NewMemoryStore(), RegistryOptions{})
		_, err := r.Register(context.Background(), m, wasm)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "compilation timed out after 1ns") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		h := newHost(t, HostOptions{})
		r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := r.Register(ctx, m, wasm)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if len(h.compiled) != 0 {
			t.Fatal("an abandoned compilation was kept")
		}
		// The slot was given back: the next registration compiles.
		if _, err := r.Register(context.Background(), m, wasm); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancelled while compiling", func(t *testing.T) {
		// 30 functions, each at the br_table ceiling: seconds to compile
		// in all, a fraction of a second each. The context is cancelled
		// once the compilation holds its slot; wazero stops between two
		// functions.
		targets := make([][]byte, 32_767)
		for i := range targets {
			targets[i] = wt.U32(0)
		}
		body := wt.Body(nil, wt.Cat([]byte{0x02, 0x40, 0x41, 0x00, 0x0e}, wt.Vec(targets...), wt.U32(0), []byte{0x0b, 0x0b}))
		var funcs, bodies [][]byte
		for range 30 {
			funcs, bodies = append(funcs, wt.U32(0)), append(bodies, body)
		}
		slow := wt.Module(wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))), wt.Section(wt.SecFunction, wt.Vec(funcs...)),
			wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1))),
			wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, 0), wt.Export("memory", 2, 0))), wt.Section(wt.SecCode, wt.Vec(bodies...)))
		h := newHost(t, HostOptions{ModuleLimits: ModuleLimits{Compilations: 1}})
		r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := r.Register(ctx, manifestFor("slow"), slow)
			done <- err
		}()
		for len(h.compileSlots) == 0 {
			runtime.Gosched()
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "compile module") {
			t.Fatalf("err = %v", err)
		}
		if len(h.compiled) != 0 {
			t.Fatal("a cancelled compilation was kept")
		}
	})
	t.Run("waiting for a slot", func(t *testing.T) {
		h := newHost(t, HostOptions{ModuleLimits: ModuleLimits{Compilations: 1}})
		r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
		h.compileSlots <- struct{}{} // another compilation holds the only slot
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := r.Register(ctx, m, wasm)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for a compile slot") {
			t.Fatalf("err = %v", err)
		}
		<-h.compileSlots
	})
}

// Ensure refused registrations leave nothing behind: 300 distinct modules
// refused by gate A are never compiled, and the heap stays flat. (Before:
// each was compiled and kept forever.)
func TestRefusalsLeaveHeapFlat(t *testing.T) {
	h := newHost(t, HostOptions{})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	// 200 functions of straight-line code, and an import nothing offers.
	body := wt.Body(nil, wt.Cat(bytes.Repeat([]byte{0x41, 0x01, 0x1a}, 300), []byte{0x0b}))
	funcs, bodies := [][]byte{}, [][]byte{}
	for i := 0; i < 200; i++ {
		funcs = append(funcs, wt.U32(0))
		bodies = append(bodies, body)
	}
	module := func(i int) []byte {
		return wt.Module(
			wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
			wt.Section(wt.SecImport, wt.Vec(wt.ImportFunc("env", "system", 0))),
			wt.Section(wt.SecFunction, wt.Vec(funcs...)),
			wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1))),
			wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, 1), wt.Export("memory", 2, 0))),
			wt.Section(wt.SecCode, wt.Vec(bodies...)),
			wt.Section(wt.SecCustom, wt.Name("nonce"), []byte(fmt.Sprint(i))))
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := 0; i < 300; i++ {
		err := registerBytes(t, r, manifestFor("refused"), module(i))
		if !errors.Is(err, ErrImportNotGranted) {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	after := heap()
	t.Logf("300 refused registrations of %d-byte modules: heap %d -> %d bytes after GC", len(module(0)), before, after)
	if len(h.compiled) != 0 {
		t.Fatalf("%d refused modules kept", len(h.compiled))
	}
	if after > before+16<<20 {
		t.Fatalf("heap grew by %d bytes", after-before)
	}
}

// Ensure gate A compares each import's signature with the host function
// it would link, naming both, and refuses imports of tables, memories and
// globals, which the host never offers. (Before: registered, and every
// call failed to link.)
func TestImportSignatures(t *testing.T) {
	// importing imports one thing; start is _start's function index (1
	// after a function import, 0 after any other).
	importing := func(start uint32, imports ...[]byte) []byte {
		return wt.Module(
			wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil), wt.FuncType([]byte{wt.I32}, []byte{wt.I32}))),
			wt.Section(wt.SecImport, wt.Vec(imports...)),
			wt.Section(wt.SecFunction, wt.Vec(wt.U32(0))),
			wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1))),
			wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, start), wt.Export("memory", 2, 0))),
			wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, []byte{0x0b}))))
	}
	tests := []struct {
		name    string
		caps    []string
		imports [][]byte
		kind    error
		want    string
	}{
		{"wasi function", nil, [][]byte{wt.ImportFunc("wasi_snapshot_preview1", "fd_write", 1)}, ErrImportSignature,
			"import wasi_snapshot_preview1.fd_write is declared (i32) -> (i32), the host function is (i32, i32, i32, i32) -> (i32)"},
		{"nanovm function", []string{"nanovm:log"}, [][]byte{wt.ImportFunc("nanovm", "log", 1)}, ErrImportSignature,
			"import nanovm.log is declared (i32) -> (i32), the host function is (i32, i32, i32) -> ()"},
		{"imported memory", nil, [][]byte{wt.Cat(wt.Name("env"), wt.Name("memory"), []byte{0x02}, wt.Limits(1, -1))}, ErrImportNotGranted,
			"import env.memory (a memory) is not offered: the host links functions only"},
		{"imported global", nil, [][]byte{wt.Cat(wt.Name("env"), wt.Name("g"), []byte{0x03, wt.I32, 0x00})}, ErrImportNotGranted,
			"import env.g (a global) is not offered"},
		{"imported table", nil, [][]byte{wt.Cat(wt.Name("env"), wt.Name("t"), []byte{0x01}, wt.Table(1, -1))}, ErrImportNotGranted,
			"import env.t (a table) is not offered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t)
			m := manifestFor("imports")
			m.Capabilities = tt.caps
			start := uint32(0)
			if tt.kind == ErrImportSignature { // a function import comes first
				start = 1
			}
			wasm := importing(start, tt.imports...)
			if tt.name == "imported memory" {
				// The module's own memory would be a second one.
				wasm = wt.Module(
					wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
					wt.Section(wt.SecImport, wt.Vec(tt.imports...)),
					wt.Section(wt.SecFunction, wt.Vec(wt.U32(0))),
					wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, 0))),
					wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, []byte{0x0b}))))
			}
			err := registerBytes(t, r, m, wasm)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %v: %s", err, tt.kind, tt.want)
			}
		})
	}
	// The right signature registers.
	r := newRegistry(t)
	ok := wt.Module(
		wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil), wt.FuncType([]byte{wt.I32, wt.I32, wt.I32}, nil))),
		wt.Section(wt.SecImport, wt.Vec(wt.ImportFunc("nanovm", "log", 1))),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0))),
		wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1))),
		wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, 1), wt.Export("memory", 2, 0))),
		wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, []byte{0x0b}))))
	m := manifestFor("log_ok")
	m.Capabilities = []string{"nanovm:log"}
	if err := registerBytes(t, r, m, ok); err != nil {
		t.Fatal(err)
	}
}

// Ensure a malformed module is refused by the structural read as an
// invalid module, naming section and offset.
func TestMalformedModuleRefused(t *testing.T) {
	r := newRegistry(t)
	wasm := wt.Command(1, nil, []byte{0x0b})
	err := registerBytes(t, r, manifestFor("cut"), wasm[:len(wasm)-3])
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "section at offset") {
		t.Fatalf("err = %v", err)
	}
	// A threads opcode is refused, naming it.
	err = registerBytes(t, r, manifestFor("atomic"), wt.Command(1, nil, []byte{0xfe, 0x03, 0x00, 0x0b}))
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "opcode 0xfe atomics prefix (threads) is not enabled") {
		t.Fatalf("err = %v", err)
	}
}

// Ensure a refusal lists a bounded number of problems, and says how many
// it left out.
func TestImportRefusalBounded(t *testing.T) {
	var imports [][]byte
	for i := 0; i < 30; i++ {
		imports = append(imports, wt.ImportFunc("env", fmt.Sprint("f", i), 0))
	}
	wasm := wt.Module(
		wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
		wt.Section(wt.SecImport, wt.Vec(imports...)),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0))),
		wt.Section(wt.SecExport, wt.Vec(wt.Export("_start", 0, 30))),
		wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, []byte{0x0b}))))
	err := registerBytes(t, newRegistry(t), manifestFor("many"), wasm)
	if !errors.Is(err, ErrImportNotGranted) || !strings.HasSuffix(err.Error(), "import env.f19 is not offered by any capability; and 10 more") {
		t.Fatalf("err = %v", err)
	}
}

// Ensure what every instance allocates for the segments and globals a
// module declares counts against the call's memory ceiling and the
// server's budget, as tables do: measured under wazero v1.12, 24 bytes a
// data or element segment and 88 a global, outside linear memory. (Before:
// a 2 MB module of 1,000,000 empty data segments cost 24 MB of heap per
// instance, charged nowhere, under a memory_mib of 1.)
func TestSegmentsAndGlobalsCountAgainstMemory(t *testing.T) {
	segs := make([][]byte, 1_000_000)
	for i := range segs {
		segs[i] = []byte{0x01, 0x00} // a passive, empty data segment
	}
	data := wt.Command(0, nil, []byte{0x0b}, wt.Section(wt.SecDataCount, wt.U32(uint32(len(segs)))), wt.Section(wt.SecData, wt.Vec(segs...)))
	globals := make([][]byte, 100_000)
	for i := range globals {
		globals[i] = []byte{wt.I32, 0x00, 0x41, 0x00, 0x0b} // immutable i32 = 0
	}
	glob := wt.Command(0, nil, []byte{0x0b}, wt.Section(wt.SecGlobal, wt.Vec(globals...)))
	tests := []struct {
		name   string
		wasm   []byte
		bytes  uint64
		needed string
	}{
		{"data segments", data, 24_000_000, "1000000 data segments"},
		{"globals", glob, 8_800_000, "100000 globals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t)
			m := manifestFor("segs")
			m.Limits.MemoryMiB = 1
			err := registerBytes(t, r, m, tt.wasm)
			if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), tt.needed) {
				t.Fatalf("under 1 MiB: %v", err)
			}
			m.Limits.MemoryMiB = 64
			if err := registerBytes(t, r, m, tt.wasm); err != nil {
				t.Fatal(err)
			}
			tool, err := r.Resolve(context.Background(), "segs")
			if err != nil {
				t.Fatal(err)
			}
			if tool.mod.tableBytes < tt.bytes {
				t.Fatalf("an instance is charged %d bytes, want at least %d", tool.mod.tableBytes, tt.bytes)
			}
			if _, err := r.Call(context.Background(), "segs", CallRequest{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Ensure a module is read and rewritten only in a compile slot: parsing
// and instrumenting allocate about 20× a module's size, so uploads that
// arrive together must queue for the slots before that, not only before
// the compile. With every slot taken, even a module the read would
// refuse at once waits, and ends with its caller's cancel.
func TestModuleReadWaitsForCompileSlot(t *testing.T) {
	h := newHost(t, HostOptions{})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	for range cap(h.compileSlots) {
		h.compileSlots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := r.RegisterAs(ctx, toolrecord.SourceUpload, manifestFor("garbage"), []byte("\x00asm\x01\x00\x00\x00not a section"))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for a compile slot") {
		t.Fatalf("a module read while every compile slot was taken: %v", err)
	}
	for range cap(h.compileSlots) {
		<-h.compileSlots
	}
	if _, err := r.RegisterAs(context.Background(), toolrecord.SourceUpload, manifestFor("garbage"), []byte("\x00asm\x01\x00\x00\x00not a section")); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("the same module with a slot free: %v", err)
	}
}
