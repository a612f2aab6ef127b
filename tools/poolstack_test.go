package tools

import (
	"context"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero/api"

	w "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// deepCallModule is a pooled module whose nanovm_call recurses depth
// calls deep, then returns 0.
func deepCallModule(depth int32) []byte {
	call := w.Body(nil, w.Cat([]byte{0x41}, w.S32(depth), []byte{0x10, 0x01, 0x41, 0x00, 0x0b}))
	// (param i32): if n { n-1; call self }
	rec := w.Body([][]byte{w.Local(100, w.I64)}, []byte{0x20, 0x00, 0x04, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x01, 0x0b, 0x0b})
	return w.Module(
		w.Section(w.SecType, w.Vec(w.FuncType(nil, []byte{w.I32}), w.FuncType([]byte{w.I32}, nil))),
		w.Section(w.SecFunction, w.Vec(w.U32(0), w.U32(1))),
		w.Section(w.SecMemory, w.Vec(w.Limits(1, -1))),
		w.Section(w.SecExport, w.Vec(w.Export("nanovm_call", 0, 0), w.Export("memory", 2, 0))),
		w.Section(w.SecCode, w.Vec(call, rec)),
	)
}

// Ensure an idle pooled instance does not keep the call stack its last
// call grew: the runtime's stack lives outside linear memory, is charged
// to no budget and grows to about 100 MiB before it overflows, so a pool
// of instances that once recursed deep would hold it for good. (Before:
// one idle instance under memory_mib 1 held 120 MiB of heap.)
func TestPooledInstanceKeepsNoDeepStack(t *testing.T) {
	r := newRegistry(t)
	m := manifestFor("deep")
	m.Isolation = IsolationPool
	m.Limits.MemoryMiB = 1
	if err := registerBytes(t, r, m, deepCallModule(1_000_000)); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	if _, err := r.Call(context.Background(), "deep", CallRequest{}); err != nil {
		t.Fatal(err)
	}
	tool, err := r.Resolve(context.Background(), "deep")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tool.pool.idle); n != 1 {
		t.Fatalf("%d idle instances, want 1", n)
	}
	if grown := int64(heap()) - int64(before); grown > 16<<20 {
		t.Fatalf("with the instance idle the heap is %d MiB larger", grown>>20)
	}
	// The instance still serves.
	if _, err := r.Call(context.Background(), "deep", CallRequest{}); err != nil {
		t.Fatal(err)
	}
}

// Ensure stackBytes reads the stack of the runtime's functions (if wazero
// renamed the field, every pooled call would pay for a fresh function).
func TestStackBytesReadsWazero(t *testing.T) {
	r := newRegistry(t)
	m := manifestFor("shallow")
	m.Isolation = IsolationPool
	if err := registerBytes(t, r, m, deepCallModule(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Call(context.Background(), "shallow", CallRequest{}); err != nil {
		t.Fatal(err)
	}
	tool, err := r.Resolve(context.Background(), "shallow")
	if err != nil {
		t.Fatal(err)
	}
	w := tool.pool.idle[0]
	n, ok := stackBytes(w.call)
	if !ok || n <= 0 || n > maxIdleStack {
		t.Fatalf("stackBytes = %d, %v; want the idle instance to keep its small stack", n, ok)
	}
}

// Ensure stackBytes's cached field index is kept per function type: types
// asked about in turn each get their own field (or none).
func TestStackBytesCachePerType(t *testing.T) {
	type stackLast struct {
		api.Function
		pad   int
		stack []byte
	}
	type stackFirst struct {
		stack []byte
		api.Function
	}
	type without struct{ api.Function }
	for range 2 {
		if n, ok := stackBytes(&stackLast{stack: make([]byte, 7)}); !ok || n != 7 {
			t.Fatalf("stack as the last field: %d, %v; want 7, true", n, ok)
		}
		if n, ok := stackBytes(&without{}); ok {
			t.Fatalf("without a stack field: %d, %v; want false", n, ok)
		}
		if n, ok := stackBytes(&stackFirst{stack: make([]byte, 3)}); !ok || n != 3 {
			t.Fatalf("stack as the first field: %d, %v; want 3, true", n, ok)
		}
	}
}
