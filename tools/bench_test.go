package tools

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// reportCPU adds the CPU-µs/op metric: the process's CPU (every thread,
// the collector's included) per iteration since start, which a shared
// machine's load disturbs less than wall time.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 && start >= 0 {
		b.ReportMetric(float64(processCPU(b)-start)/float64(time.Microsecond)/float64(b.N), "CPU-µs/op")
	}
}

// BenchmarkCall measures the per-call overhead of the smallest bundled
// tools, the C tools poll and get_order_amount (the one `bench`'s
// tool-call scenario calls): a fresh instance per call, and a warm pooled
// instance.
func BenchmarkCall(b *testing.B) {
	r := newRegistry(b, "poll", "get_order_amount")
	register(b, r, "poll", func(m *Manifest) { m.Name = "poll_pooled"; m.Isolation = IsolationPool; m.PoolSize = 2 })
	register(b, r, "get_order_amount", func(m *Manifest) {
		m.Name = "get_order_amount_pooled"
		m.Isolation = IsolationPool
		m.PoolSize = 2
	})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args map[string]any
	}{
		{"poll", map[string]any{"status": "SUCCESS"}},
		{"poll_pooled", map[string]any{"status": "SUCCESS"}},
		{"get_order_amount", map[string]any{"order_id": "o-1"}},
		{"get_order_amount_pooled", map[string]any{"order_id": "o-1"}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchCalls(b, r, tc.name, tc.args) })
	}
	b.Run("poll_parallel", func(b *testing.B) {
		tool, err := r.Resolve(ctx, "poll")
		if err != nil {
			b.Fatal(err)
		}
		args := map[string]any{"status": "SUCCESS"}
		b.ReportAllocs()
		cpu := processCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportCPU(b, cpu)
	})
}

// BenchmarkLoadFromCache measures start-up work per tool when the compiled
// code is already in the on-disk cache: compiling a bundled module in a new
// host over a warm cache directory.
func BenchmarkLoadFromCache(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	wasm := modules(b)["validate_amount"].Wasm
	warm := newHost(b, HostOptions{CacheDir: dir})
	if _, err := warm.compile(ctx, wasm); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		h, err := NewHost(ctx, HostOptions{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := h.compile(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = h.Close(ctx)
		b.StartTimer()
	}
}

// BenchmarkGoTool measures the Go-built reactor format_receipt: a fresh
// instance per call (Go runtime start-up each time) and a warm pooled one.
func BenchmarkGoTool(b *testing.B) {
	r := newRegistry(b, "format_receipt")
	register(b, r, "format_receipt", func(m *Manifest) { m.Name = "format_receipt_fresh"; m.Isolation = IsolationFresh; m.PoolSize = 0 })
	args := map[string]any{"order_id": "o-1", "amount": 50005}
	for _, tc := range []struct{ name, tool string }{{"fresh", "format_receipt_fresh"}, {"pooled", "format_receipt"}} {
		b.Run(tc.name, func(b *testing.B) { benchCalls(b, r, tc.tool, args) })
	}
}

// BenchmarkMountCall measures a call of a wasi:fs tool (the fs_escape
// testtool: no bundled tool uses the file system) that reads one file
// from a mount, and one that creates and writes one: the cost of serving
// mounts through os.Root, with its per-instance check that host_path
// still names the directory it opened.
func BenchmarkMountCall(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("hello"), 0o644); err != nil {
		b.Fatal(err)
	}
	r := newRegistry(b)
	register(b, r, "fs_escape", func(m *Manifest) { m.Mounts = []Mount{{HostPath: dir, GuestPath: "/data"}} })
	ctx := context.Background()
	tool, err := r.Resolve(ctx, "fs_escape")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args map[string]any
	}{
		{"read", map[string]any{"path": "/data/in.txt"}},
		{"write", map[string]any{"op": "write", "path": "/data/out.txt", "data": "hello"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tool.Call(ctx, CallRequest{Args: tc.args}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRuntimeFloor measures the runtime's share of a call of
// get_order_amount, what no change on the host side can take away:
// "instantiate" is wazero instantiating the compiled module (its _start
// running) and closing it, with a prebuilt config and a reused memory
// (freshSlot's), "call" is one nanovm_call of a warm instance. Compare
// with BenchmarkCall/get_order_amount and .../get_order_amount_pooled.
// "instantiate_bare" is the instantiation and close alone, no function
// run (the sys context, the instance, its memory and data); and
// "instantiate_export" adds looking up nanovm_call, which gives the
// instance its call engine (and wazero's 10 KiB call stack): the rest of
// "instantiate" is running _start. docs/performance.md breaks them down.
func BenchmarkRuntimeFloor(b *testing.B) {
	r := newRegistry(b, "get_order_amount")
	ctx := context.Background()
	tool, err := r.Resolve(ctx, "get_order_amount")
	if err != nil {
		b.Fatal(err)
	}
	stdin := []byte(`{"order_id":"o-1"}`)
	st := &callState{tool: tool, memLimit: tool.lim.memory}
	st.stdout = capWriter{max: tool.lim.stdout, state: st}
	st.stderr = capWriter{max: tool.lim.stderr, state: st}
	s := tool.getSlot()
	st.ctx = callCtx{Context: ctx, st: st, vals: s.vals}
	b.Run("instantiate", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			s.arm(st, stdin)
			st.stdout.buf = st.stdout.buf[:0]
			mod, err := tool.host.rt.InstantiateModule(&st.ctx, tool.mod.code, s.cfg)
			if err != nil {
				b.Fatal(err)
			}
			_ = mod.Close(ctx)
			s.mem.Free()
			s.disarm()
		}
		reportCPU(b, cpu)
	})
	for _, tc := range []struct {
		name   string
		export bool
	}{{"instantiate_bare", false}, {"instantiate_export", true}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := s.cfg.WithStartFunctions()
			b.ReportAllocs()
			cpu := processCPU(b)
			for b.Loop() {
				s.arm(st, stdin)
				mod, err := tool.host.rt.InstantiateModule(&st.ctx, tool.mod.code, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if tc.export && mod.ExportedFunction("nanovm_call") == nil {
					b.Fatal("no nanovm_call")
				}
				_ = mod.Close(ctx)
				s.mem.Free()
				s.disarm()
			}
			reportCPU(b, cpu)
		})
	}
	b.Run("call", func(b *testing.B) {
		s.arm(st, stdin)
		cfg := s.cfg.WithStartFunctions()
		mod, err := tool.host.rt.InstantiateModule(&st.ctx, tool.mod.code, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = mod.Close(ctx); s.mem.Free() }()
		fn := mod.ExportedFunction("nanovm_call")
		var stack [1]uint64
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			s.in.set(stdin)
			st.stdout.buf = st.stdout.buf[:0]
			if err := fn.CallWithStack(&st.ctx, stack[:]); err != nil || stack[0] != 0 {
				b.Fatal(err, stack[0])
			}
		}
		reportCPU(b, cpu)
	})
}

// benchCalls calls the tool name with args b.N times, one after the
// other, after one call that warms the pool and the buffer pools.
func benchCalls(b *testing.B, r *Registry, name string, args map[string]any) {
	ctx := context.Background()
	tool, err := r.Resolve(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// countdownModule is
//
//	(module (func (export "countdown") (param i32)
//	  (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))
//
// a loop of as many iterations as its argument says, and nothing else.
var countdownModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x05, 0x01, 0x60, 0x01, 0x7f, 0x00, // type: (i32) -> ()
	0x03, 0x02, 0x01, 0x00, // func 0 has type 0
	0x07, 0x0d, 0x01, 0x09, 'c', 'o', 'u', 'n', 't', 'd', 'o', 'w', 'n', 0x00, 0x00, // export countdown
	0x0a, 0x10, 0x01, 0x0e, 0x00, // code: one body of 14 bytes, no locals
	0x03, 0x40, // loop
	0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // local.get 0, i32.const 1, i32.sub, local.tee 0
	0x0d, 0x00, // br_if 0
	0x0b, 0x0b, // end, end
}

// BenchmarkCloseOnContextDone measures what wazero v1.12 charges a call
// for WithCloseOnContextDone (mode "on"), which the host used to stop a
// running guest at a deadline: a goroutine per call from Go, watching the
// context, and at every loop iteration an exit from the guest's machine
// code to Go to check whether the instance was closed; against no
// termination check at all ("off"), and the host's own check written into
// the guest ("check": wasmbin.Instrument, the option off), which costs a
// call of the check per loop iteration and an exit to Go every
// wasmbin.ExitBudget weighed instructions. Each case runs on a bare runtime: a warm
// call of countdown for 1, 30 and 300 iterations, and a warm nanovm_call
// of get_order_amount (stdin and stdout in memory).
func BenchmarkCloseOnContextDone(b *testing.B) {
	ctx := context.Background()
	stdin := []byte(`{"order_id":"o-1"}`)
	for _, name := range []string{"on", "off", "check"} {
		on := name == "on"
		rewrite := func(wasm []byte) []byte {
			if name != "check" {
				return wasm
			}
			pm, err := wasmbin.Parse(wasm, wasmbin.Limits{})
			if err != nil {
				b.Fatal(err)
			}
			out, _ := pm.Instrument(wasm, 1<<20)
			return out
		}
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(on))
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			b.Fatal(err)
		}
		countdown, err := rt.Instantiate(ctx, rewrite(countdownModule))
		if err != nil {
			b.Fatal(err)
		}
		var in swapReader
		var out bytes.Buffer
		goa, err := rt.InstantiateWithConfig(ctx, rewrite(modules(b)["get_order_amount"].Wasm),
			wazero.NewModuleConfig().WithName("").WithStdin(&in).WithStdout(&out).WithStartFunctions())
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []uint64{1, 30, 300, 30000} {
			b.Run(fmt.Sprintf("%s/loop_%d", name, n), func(b *testing.B) {
				fn := countdown.ExportedFunction("countdown")
				stack := []uint64{n}
				b.ReportAllocs()
				cpu := processCPU(b)
				for b.Loop() {
					stack[0] = n
					if err := fn.CallWithStack(ctx, stack); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
		b.Run(name+"/get_order_amount", func(b *testing.B) {
			fn := goa.ExportedFunction("nanovm_call")
			var stack [1]uint64
			b.ReportAllocs()
			cpu := processCPU(b)
			for b.Loop() {
				in.set(stdin)
				out.Reset()
				if err := fn.CallWithStack(ctx, stack[:]); err != nil || stack[0] != 0 {
					b.Fatal(err, stack[0])
				}
			}
			reportCPU(b, cpu)
			if !bytes.HasPrefix(out.Bytes(), []byte(`{"order_id":"o-1","amount":`)) {
				b.Fatalf("stdout %q", out.Bytes())
			}
		})
		_ = rt.Close(ctx)
	}
}
