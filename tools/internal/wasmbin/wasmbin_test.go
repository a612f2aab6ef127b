package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	wt "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// testLimits are ceilings small enough to test and large enough for every
// committed module.
var testLimits = Limits{
	Types: 1000, Params: 100, Results: 100, Imports: 1000, Functions: 100_000, Tables: 10,
	TableElements: 1 << 27, Globals: 1000, Exports: 1000, ElemSegments: 1000, ElemEntries: 100_000,
	DataSegments: 1_000_000, FunctionLocals: 1000, TotalLocals: 1_000_000, BodyBytes: 1 << 20,
	Nesting: 4096, BrTableTargets: 32768, Customs: 100,
}

// committed returns every .wasm committed under wasm-tools/.
func committed(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../../wasm-tools/*/*/*.wasm")
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed modules: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func sig(def api.FunctionDefinition) FuncType {
	var ft FuncType
	for _, p := range def.ParamTypes() {
		ft.Params = append(ft.Params, ValType(p))
	}
	for _, r := range def.ResultTypes() {
		ft.Results = append(ft.Results, ValType(r))
	}
	return ft
}

// Ensure every committed module parses, and what Parse reads (imports
// with their signatures, exported functions, the memory's minimum) is what
// wazero reads from the same bytes.
func TestParseAgreesWithWazero(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for name, wasm := range committed(t) {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(wasm, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			c, err := rt.CompileModule(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			var imports []Import
			for _, im := range m.Imports {
				if im.Kind == KindFunc {
					imports = append(imports, im)
				}
			}
			wants := c.ImportedFunctions()
			if len(imports) != len(wants) {
				t.Fatalf("%d function imports, wazero reads %d", len(imports), len(wants))
			}
			for i, w := range wants {
				mod, n, _ := w.Import()
				if imports[i].Module != mod || imports[i].Name != n || !imports[i].Func.Equal(sig(w)) {
					t.Fatalf("import %d = %s.%s %s, wazero reads %s.%s %s", i, imports[i].Module, imports[i].Name, imports[i].Func, mod, n, sig(w))
				}
			}
			var exports []string
			for _, e := range m.Exports {
				if e.Kind == KindFunc {
					exports = append(exports, e.Name)
					ft, ok := m.FuncType(e.Index)
					if !ok || !ft.Equal(sig(c.ExportedFunctions()[e.Name])) {
						t.Fatalf("export %s: %s, wazero reads %s", e.Name, ft, sig(c.ExportedFunctions()[e.Name]))
					}
				}
			}
			var wantExports []string
			for n := range c.ExportedFunctions() {
				wantExports = append(wantExports, n)
			}
			slices.Sort(exports)
			slices.Sort(wantExports)
			if !slices.Equal(exports, wantExports) {
				t.Fatalf("exports %v, wazero reads %v", exports, wantExports)
			}
			for _, mem := range c.ExportedMemories() {
				if len(m.Memories) != 1 || m.Memories[0].Min != mem.Min() {
					t.Fatalf("memories %v, wazero reads min %d", m.Memories, mem.Min())
				}
			}
		})
	}
}

func body(code ...byte) []byte { return wt.Command(1, nil, append(code, 0x0b)) }

// Ensure malformed, unsupported and over-ceiling modules are refused with
// the right kind, naming what and where.
func TestParseRefuses(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	tests := []struct {
		name string
		wasm []byte
		kind error
		want string
	}{
		{"no magic", []byte("\x00wasm\x01\x00\x00\x00"), ErrMalformed, "header section at offset 0x0: not a WebAssembly module"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), ErrMalformed, "binary version"},
		{"section past the end", wt.Cat(header, []byte{1, 0x10}), ErrMalformed, "section 1 is 16 bytes long, only 0 remain"},
		{"truncated LEB", wt.Cat(header, []byte{1, 0x80}), ErrMalformed, "unexpected end"},
		{"LEB too long", wt.Cat(header, []byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), ErrMalformed, "LEB128 longer than 5 bytes"},
		{"LEB overflow", wt.Cat(header, []byte{1, 0xff, 0xff, 0xff, 0xff, 0x7f}), ErrMalformed, "overflows 32 bits"},
		{"unknown section", wt.Cat(header, []byte{14, 0}), ErrMalformed, "unknown section id 14"},
		{"out of order", wt.Module(wt.Section(wt.SecFunction, wt.Vec()), wt.Section(wt.SecType, wt.Vec())), ErrMalformed, "type section at offset 0xb: section out of order"},
		{"count past bytes", wt.Module(wt.Section(wt.SecType, wt.U32(1<<30))), ErrMalformed, "declares 1073741824 types, but only 0 bytes remain"},
		{"types over ceiling", wt.Module(wt.Section(wt.SecType, wt.Vec(slices.Repeat([][]byte{wt.FuncType(nil, nil)}, 1001)...))), ErrCeiling, "declares 1001 types, ceiling is 1000"},
		{"params over ceiling", wt.Module(wt.Section(wt.SecType, wt.Vec(wt.FuncType(bytes.Repeat([]byte{wt.I32}, 101), nil)))), ErrCeiling, "declares 101 type 0 params, ceiling is 100"},
		{"name past bytes", wt.Module(wt.Section(wt.SecCustom, wt.U32(1<<31))), ErrMalformed, "custom section name is 2147483648 bytes long"},
		{"name not UTF-8", wt.Module(wt.Section(wt.SecCustom, wt.U32(1), []byte{0xff})), ErrMalformed, "not valid UTF-8"},
		{"name section count", wt.Module(wt.Section(wt.SecCustom, wt.Name("name"), []byte{1, 7}, wt.U32(1<<28), []byte{0, 0})), ErrMalformed, "custom:name section at offset 0x11: declares 268435456 function names, but only 2 bytes remain"},
		{"element entries past bytes", wt.Module(wt.Section(wt.SecElement, wt.Vec(wt.Cat([]byte{1, 0}, wt.U32(1<<27))))), ErrMalformed, "declares 134217728 element segment 0 entries, but only 0 bytes remain"},
		{"data count mismatch", wt.Module(wt.Section(wt.SecDataCount, wt.U32(3))), ErrMalformed, "data count 3, but 0 data segments"},
		{"bodies without functions", wt.Module(wt.Section(wt.SecCode, wt.Vec(wt.Body(nil, []byte{0x0b})))), ErrMalformed, "1 function bodies for 0 functions"},
		{"shared memory", wt.Module(wt.Section(wt.SecMemory, wt.Vec([]byte{0x03, 1, 1}))), ErrUnsupported, "memory is shared (threads proposal)"},
		{"memory64", wt.Module(wt.Section(wt.SecMemory, wt.Vec([]byte{0x04, 1}))), ErrUnsupported, "memory is 64-bit"},
		{"two memories", wt.Module(wt.Section(wt.SecMemory, wt.Vec(wt.Limits(1, -1), wt.Limits(1, -1)))), ErrUnsupported, "2 memories (multi-memory proposal)"},
		{"tag section", wt.Module(wt.Section(13, wt.Vec())), ErrUnsupported, "tag section (exception handling proposal)"},
		{"table too big", wt.Module(wt.Section(wt.SecTable, wt.Vec(wt.Table(1<<28, -1)))), ErrCeiling, "table 0 declares 268435456 elements at start, ceiling is 134217728"},
		{"too many tables", wt.Module(wt.Section(wt.SecTable, wt.Vec(slices.Repeat([][]byte{wt.Table(0, -1)}, 11)...))), ErrCeiling, "declares 11 tables, ceiling is 10"},
		{"locals over ceiling", wt.Command(1, [][]byte{wt.Local(600, wt.I32), wt.Local(600, wt.I64)}, []byte{0x0b}), ErrCeiling, "function 0 declares 1200 locals, ceiling is 1000"},
		{"locals past 2^32", wt.Command(1, [][]byte{wt.Local(2, wt.I64), wt.Local(0xffffffff, wt.I32)}, []byte{0x0b}), ErrMalformed, "more than 2^32 locals"},
		{"local type", wt.Command(1, [][]byte{wt.Local(1, 0x69)}, []byte{0x0b}), ErrUnsupported, "function 0 local has value type 0x69"},
		{"tail call", body(0x12, 0x00), ErrUnsupported, "function 0: opcode 0x12 return_call (tail call) is not enabled"},
		{"exceptions", body(0x06, 0x40), ErrUnsupported, "opcode 0x6 try (exception handling) is not enabled"},
		{"atomics", body(0xfe, 0x00), ErrUnsupported, "atomics prefix (threads)"},
		{"unknown opcode", body(0x27), ErrUnsupported, "function 0: unknown opcode 0x27"},
		{"misc out of range", body(0xfc, 0x12), ErrUnsupported, "opcode 0xfc 0x12 is not enabled"},
		{"SIMD gap", body(0xfd, 0x9a), ErrUnsupported, "SIMD opcode 0xfd 0x9a is not defined"},
		{"memory.grow index", body(0x41, 0x00, 0x40, 0x01, 0x1a), ErrUnsupported, "memory index byte 0x1"},
		{"code after end", wt.Command(1, nil, []byte{0x0b, 0x01, 0x0b}), ErrMalformed, "2 bytes after the function's final end"},
		{"open block", wt.Command(1, nil, []byte{0x02, 0x40, 0x0b}), ErrMalformed, "body ends inside 1 open blocks"},
		{"block type index", body(0x02, 0x05, 0x0b), ErrMalformed, "block type 5, the module has 1 types"},
		{"nesting", body(slices.Concat(bytes.Repeat([]byte{0x02, 0x40}, 4096), bytes.Repeat([]byte{0x0b}, 4096))...), ErrCeiling, "function 0 nests blocks 4097 deep, ceiling is 4096"},
		{"br_table", body(slices.Concat([]byte{0x41, 0x00, 0x0e}, wt.U32(40000), bytes.Repeat([]byte{0x00}, 40001))...), ErrCeiling, "br_tables of 40001 targets in all, ceiling is 32768"},
		{"br_table past bytes", body(slices.Concat([]byte{0x41, 0x00, 0x0e}, wt.U32(1<<30))...), ErrMalformed, "declares 1073741824 br_table targets, but only"},
		{"immediate past body", body(0xfd, 0x0c, 1, 2, 3), ErrMalformed, "needs 16 bytes, 4 remain"},
		{"const expr opcode", wt.Module(wt.Section(wt.SecGlobal, wt.Vec([]byte{wt.I32, 0, 0x6a, 0x0b}))), ErrUnsupported, "global 0: opcode 0x6a in a constant expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.wasm, testLimits)
			var pe *Error
			if !errors.Is(err, tt.kind) || !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %v: %s", err, tt.kind, tt.want)
			}
		})
	}
}

// Ensure every SIMD, bulk-memory and reference-types immediate is read
// with its exact length: a body using each is accepted whole.
func TestParseImmediates(t *testing.T) {
	memarg := []byte{0x04, 0x80, 0x01} // align 4, offset 128
	lanes := bytes.Repeat([]byte{0x01}, 16)
	tests := []struct {
		name string
		code []byte
	}{
		{"v128.const", slices.Concat([]byte{0xfd, 0x0c}, lanes, []byte{0x1a})},
		{"i8x16.shuffle", slices.Concat([]byte{0xfd, 0x0c}, lanes, []byte{0xfd, 0x0c}, lanes, []byte{0xfd, 0x0d}, lanes, []byte{0x1a})},
		{"v128.load", slices.Concat([]byte{0x41, 0x00, 0xfd, 0x00}, memarg, []byte{0x1a})},
		{"extract_lane", slices.Concat([]byte{0xfd, 0x0c}, lanes, []byte{0xfd, 0x15, 0x03, 0x1a})},
		{"load lane", slices.Concat([]byte{0x41, 0x00, 0xfd, 0x0c}, lanes, []byte{0xfd, 0x54, 0x00, 0x80, 0x01, 0x07, 0x1a})},
		{"i16x8.abs (two-byte sub-opcode)", slices.Concat([]byte{0xfd, 0x0c}, lanes, []byte{0xfd, 0x80, 0x01, 0x1a})},
		{"memory.copy fill", []byte{0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 0x0a, 0, 0, 0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 0x0b, 0}},
		{"trunc_sat", []byte{0x43, 0, 0, 0, 0, 0xfc, 0x00, 0x1a}},
		{"select t", []byte{0x41, 1, 0x41, 2, 0x41, 0, 0x1c, 0x01, 0x7f, 0x1a}},
		{"ref.null is_null", []byte{0xd0, 0x6f, 0xd1, 0x1a}},
		{"consts", slices.Concat([]byte{0x42}, bytes.Repeat([]byte{0xff}, 9), []byte{0x00, 0x1a, 0x44}, make([]byte, 8), []byte{0x1a})},
		{"br_table", []byte{0x02, 0x40, 0x41, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x0b}},
		{"if else", []byte{0x41, 0x01, 0x04, 0x7f, 0x41, 0x01, 0x05, 0x41, 0x02, 0x0b, 0x1a}},
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := body(tt.code...)
			m, err := Parse(wasm, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			if m.Code.Instructions == 0 {
				t.Fatal("no instructions read")
			}
			// wazero reads the same bytes as a valid function.
			c, err := rt.CompileModule(ctx, wasm)
			if err != nil {
				t.Fatalf("wazero refuses the test body: %v", err)
			}
			c.Close(ctx)
		})
	}
}

// Ensure HoldTables gives every table a maximum at most the ceiling,
// changes nothing else, and leaves a module without such a table as it is.
func TestHoldTables(t *testing.T) {
	wasm := wt.Command(1, nil, []byte{0x0b},
		wt.Section(wt.SecTable, wt.Vec(wt.Table(3, -1), wt.Table(2, 5), wt.Table(1, 1<<20))),
		wt.Section(wt.SecCustom, wt.Name("after"), []byte("tail")))
	m, err := Parse(wasm, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	out, maxes := m.HoldTables(wasm, 1000)
	if !slices.Equal(maxes, []uint32{1000, 5, 1000}) {
		t.Fatalf("maxes = %v", maxes)
	}
	m2, err := Parse(out, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	for i, tb := range m2.Tables {
		if !tb.HasMax || tb.Max != maxes[i] || tb.Min != m.Tables[i].Min {
			t.Fatalf("table %d = %+v", i, tb)
		}
	}
	if !bytes.Equal(out[m2.TableSection[1]:], wasm[m.TableSection[1]:]) || !bytes.Equal(out[:m.tableSectionHeader], wasm[:m.tableSectionHeader]) {
		t.Fatal("bytes outside the table section changed")
	}
	bounded := wt.Command(1, nil, []byte{0x0b}, wt.Section(wt.SecTable, wt.Vec(wt.Table(1, 10))))
	mb, _ := Parse(bounded, testLimits)
	if got, _ := mb.HoldTables(bounded, 1000); &got[0] != &bounded[0] {
		t.Fatal("a module within the ceiling was copied")
	}
}

// parseAlloc is what one Parse of wasm allocates, as the runtime counts
// it (runtime/metrics does not stop the world, unlike ReadMemStats).
func parseAlloc(wasm []byte) uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	_, _ = Parse(wasm, testLimits)
	metrics.Read(sample)
	return sample[0].Value.Uint64() - before
}

// FuzzParse checks that Parse never panics, allocates at most a small
// multiple of its input, that what it accepts stays accepted once
// HoldTables rewrote it, and that what wazero compiles it still compiles
// once instrumented, with the shape Instrument promises.
func FuzzParse(f *testing.F) {
	// While fuzzing, the committed multi-megabyte Go modules would make
	// every mutation slow; they run whole as seeds under plain go test.
	fuzzing := flag.Lookup("test.fuzz").Value.String() != ""
	for _, b := range committed(f) {
		if !fuzzing || len(b) <= 256<<10 {
			f.Add(b)
		}
	}
	f.Add(wt.Command(1, [][]byte{wt.Local(3, wt.I32)}, []byte{0x02, 0x40, 0x0b, 0x0b}, wt.Section(wt.SecTable, wt.Vec(wt.Table(1, -1)))))
	f.Add(body(0xfd, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x1a))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if fuzzing && len(wasm) > 256<<10 {
			t.Skip("large input")
		}
		// The counter is process-wide and the fuzzing engine allocates
		// too: a bound broken three times in a row is Parse's doing.
		m, err := Parse(wasm, testLimits)
		bound := 64*uint64(len(wasm)) + 1<<20
		alloc := uint64(0)
		for range 3 {
			if alloc = parseAlloc(wasm); alloc <= bound {
				break
			}
		}
		if alloc > bound {
			t.Fatalf("Parse of %d bytes allocated %d", len(wasm), alloc)
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(wasm) {
				t.Fatalf("error %v has no offset within the module", err)
			}
			return
		}
		out, maxes := m.HoldTables(wasm, testLimits.TableElements)
		m2, err := Parse(out, testLimits)
		if err != nil {
			t.Fatalf("rewritten module refused: %v", err)
		}
		if len(m2.Tables) != len(m.Tables) || len(m2.Funcs) != len(m.Funcs) || len(m2.Imports) != len(m.Imports) {
			t.Fatal("rewrite changed the module's shape")
		}
		for i, tb := range m2.Tables {
			if !tb.HasMax || tb.Max != maxes[i] || tb.Max > testLimits.TableElements {
				t.Fatalf("table %d after rewrite: %+v", i, tb)
			}
		}
		checkGuarded(t, m, wasm)
		instrumentedCompiles(t, m, wasm)
	})
}

// checkGuarded checks GuardCalls on a module Parse accepted as m: the
// result parses (without ceilings: a body grows by three bytes), has the
// same shape and two more instructions per guarded body, and needs no
// guard again.
func checkGuarded(t *testing.T, m *Module, wasm []byte) {
	t.Helper()
	out, n := m.GuardCalls(wasm)
	want, loops := countPlans(first(m.needGuards()))
	if n != want || (n == 0) != (&out[0] == &wasm[0]) {
		t.Fatalf("GuardCalls changed %d bodies of %d to guard (a copy: %v)", n, want, &out[0] != &wasm[0])
	}
	g, err := Parse(out, Limits{})
	if err != nil {
		t.Fatalf("guarded module refused: %v", err)
	}
	if len(g.Funcs) != len(m.Funcs) || len(g.Imports) != len(m.Imports) || len(g.Exports) != len(m.Exports) || len(g.Customs) != len(m.Customs) || g.DataSegments != m.DataSegments {
		t.Fatal("GuardCalls changed the module's shape")
	}
	if g.Code.Instructions != m.Code.Instructions+2*uint64(loops) {
		t.Fatalf("guarded module has %d instructions, want %d + 2×%d", g.Code.Instructions, m.Code.Instructions, loops)
	}
	if again, _ := countPlans(first(g.needGuards())); again != 0 {
		t.Fatalf("%d bodies of the guarded module still need a guard", again)
	}
}

// Ensure GuardCalls puts the loop where it must and nowhere else: in a
// body that recurses, after its locals and after its call of itself; not
// in one that does not call, nor in one that starts with a loop.
func TestGuardCalls(t *testing.T) {
	call0 := []byte{0x10, 0x00}
	loopCall := []byte{0x03, 0x40, 0x10, 0x00, 0x0b}
	wasm := wt.Module(
		wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0), wt.U32(0), wt.U32(0))),
		wt.Section(wt.SecCode, wt.Vec(
			wt.Body([][]byte{wt.Local(2, wt.I32)}, append(append([]byte{}, call0...), 0x0b)),
			wt.Body(nil, []byte{0x01, 0x0b}),
			wt.Body(nil, append(append([]byte{}, loopCall...), 0x0b)),
		)),
	)
	m, err := Parse(wasm, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	out, n := m.GuardCalls(wasm)
	if n != 1 {
		t.Fatalf("guarded %d bodies, want 1 (the one that recurses)", n)
	}
	want := wt.Module(
		wt.Section(wt.SecType, wt.Vec(wt.FuncType(nil, nil))),
		wt.Section(wt.SecFunction, wt.Vec(wt.U32(0), wt.U32(0), wt.U32(0))),
		wt.Section(wt.SecCode, wt.Vec(
			wt.Body([][]byte{wt.Local(2, wt.I32)}, wt.Cat([]byte{0x03, 0x40, 0x0b}, call0, []byte{0x03, 0x40, 0x0b, 0x0b})),
			wt.Body(nil, []byte{0x01, 0x0b}),
			wt.Body(nil, append(append([]byte{}, loopCall...), 0x0b)),
		)),
	)
	if !bytes.Equal(out, want) {
		t.Fatalf("guarded module\n%x\nwant\n%x", out, want)
	}
	checkGuarded(t, m, wasm)
}

// Ensure wazero compiles every committed module once guarded and once
// instrumented, as it compiles the module as built.
func TestRewritesCompile(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	for name, wasm := range committed(t) {
		m, err := Parse(wasm, testLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		guarded, n := m.GuardCalls(wasm)
		checkGuarded(t, m, wasm)
		t.Logf("%s: %d of %d bodies guarded", name, n, len(m.Funcs))
		for how, out := range map[string][]byte{"guarded": guarded, "instrumented": checkInstrumented(t, m, wasm)} {
			cm, err := r.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("%s %s: wazero refused it: %v", name, how, err)
			}
			cm.Close(ctx)
		}
	}
}

// Ensure what Parse keeps of a module's calls for GuardCalls, and the
// rewrite itself, stay a small multiple of the module: one made of
// nothing but calls (one every two bytes, four 1 MiB bodies, the first
// calling itself, so it gets a loop after each of its 500,000 calls,
// the others calling it as often, so each gets one at its entry)
// allocates at most 16 times its size. (Before packing the call sites and
// reusing one buffer: 45 times.)
func TestGuardCallsAllocationBound(t *testing.T) {
	code := make([]byte, 0, 1<<20)
	for len(code) < 1<<20-4 {
		code = append(code, 0x10, 0x00)
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
	out, n := m.GuardCalls(wasm)
	runtime.ReadMemStats(&after)
	if n != 4 || len(out) <= len(wasm) {
		t.Fatalf("guarded %d bodies; want all four (one recursive, three far over the budget)", n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a module of %d bytes of calls: Parse and GuardCalls allocated %d MiB (%.1f×)", len(wasm), alloc>>20, float64(alloc)/float64(len(wasm)))
	if alloc > 16*uint64(len(wasm)) {
		t.Fatalf("allocated %d bytes for a module of %d", alloc, len(wasm))
	}
}

func first[A, B any](a A, _ B) A { return a }
