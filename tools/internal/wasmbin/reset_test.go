package wasmbin

import (
	"strings"
	"testing"

	w "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// Ensure each construct that puts state outside memory and the mutable
// globals, or that names another module's state, makes a module not
// resettable, and that a resettable one gets its mutable globals (and only
// those) and the counter exported.
func TestResettable(t *testing.T) {
	table := w.Section(w.SecTable, w.Vec(w.Table(1, 1)))
	elem := w.Section(w.SecElement, w.Vec(w.Cat([]byte{0x01, 0x00}, w.Vec(w.U32(0))))) // passive, funcref by index
	data := w.Section(w.SecData, w.Vec(w.Cat([]byte{0x01}, w.Vec([]byte("x")))))       // passive
	dataCount := w.Section(w.SecDataCount, w.U32(1))
	globals := w.Section(w.SecGlobal, w.Vec(
		w.Cat([]byte{w.I32, 0x01, 0x41}, w.S32(7), []byte{0x0b}), // mutable
		w.Cat([]byte{w.I32, 0x00, 0x41}, w.S32(8), []byte{0x0b}), // immutable
		w.Cat([]byte{w.I64, 0x01, 0x42, 0x01, 0x0b}),             // mutable
	))
	for _, tc := range []struct {
		name  string
		wasm  []byte
		why   string // "" for resettable
		globs int    // exported mutable globals, the counter not counted
	}{
		{"plain", w.Command(1, nil, []byte{0x0b}), "", 0},
		{"globals", w.Command(1, nil, []byte{0x23, 0x00, 0x41, 0x01, 0x6a, 0x24, 0x00, 0x0b}, globals), "", 2},
		{"table read", w.Command(1, nil, []byte{0x41, 0x00, 0x25, 0x00, 0x1a, 0xfc, 0x10, 0x00, 0x1a, 0x0b}, table), "", 0},
		{"active data", w.Command(1, nil, []byte{0x0b}, w.Section(w.SecData, w.Vec(w.Cat([]byte{0x00, 0x41, 0x00, 0x0b}, w.Vec([]byte("x")))))), "", 0},
		{"table.set", w.Command(1, nil, []byte{0x41, 0x00, 0xd0, 0x70, 0x26, 0x00, 0x0b}, table), "table.set", 0},
		{"table.grow", w.Command(1, nil, []byte{0xd0, 0x70, 0x41, 0x00, 0xfc, 0x0f, 0x00, 0x1a, 0x0b}, table), "table.grow", 0},
		{"table.fill", w.Command(1, nil, []byte{0x41, 0x00, 0xd0, 0x70, 0x41, 0x00, 0xfc, 0x11, 0x00, 0x0b}, table), "table.fill", 0},
		{"table.copy", w.Command(1, nil, []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0e, 0x00, 0x00, 0x0b}, table), "table.copy", 0},
		{"table.init", w.Command(1, nil, []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0c, 0x00, 0x00, 0x0b}, table, elem), "table.init", 0},
		{"elem.drop", w.Command(1, nil, []byte{0xfc, 0x0d, 0x00, 0x0b}, table, elem), "elem.drop", 0},
		{"memory.init", w.Command(1, nil, []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x08, 0x00, 0x00, 0x0b}, data, dataCount), "memory.init", 0},
		{"data.drop", w.Command(1, nil, []byte{0xfc, 0x09, 0x00, 0x0b}, data, dataCount), "data.drop", 0},
		{"no memory", w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), "0 memories", 0},
		{"imported memory", w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecImport, w.Vec(w.Cat(w.Name("env"), w.Name("memory"), []byte{0x02}, w.Limits(1, -1)))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), "imports a memory", 0},
		{"imported table", w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecImport, w.Vec(w.Cat(w.Name("env"), w.Name("t"), []byte{0x01}, w.Table(0, -1)))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), "imports a memory, table", 0},
		{"imported global", w.Module(
			w.Section(w.SecType, w.Vec(w.FuncType(nil, nil))),
			w.Section(w.SecImport, w.Vec(w.Cat(w.Name("env"), w.Name("g"), []byte{0x03, w.I32, 0x00}))),
			w.Section(w.SecFunction, w.Vec(w.U32(0))),
			w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
			w.Section(w.SecExport, w.Vec(w.Export("_start", 0, 0))),
			w.Section(w.SecCode, w.Vec(w.Body(nil, []byte{0x0b}))),
		), "or global", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.wasm, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			why := m.Resettable()
			if (why == "") != (tc.why == "") || !strings.Contains(why, tc.why) {
				t.Fatalf("Resettable() = %q, want %q", why, tc.why)
			}
			out := checkInstrumented(t, m, tc.wasm)
			_, info := m.Instrument(tc.wasm, testLimits.TableElements)
			if tc.why != "" {
				return
			}
			if len(info.Globals) != tc.globs+1 || info.Globals[tc.globs] != GlobalExportPrefix+"counter" {
				t.Fatalf("global exports %v, want %d and the counter", info.Globals, tc.globs)
			}
			// The instrumented copy itself grows a table in its check.
			g, _ := Parse(out, Limits{})
			if g.Resettable() == "" {
				t.Fatal("the instrumented copy, whose check runs table.grow, is resettable")
			}
		})
	}
}
