package tools

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCall measures the per-call overhead of the smallest bundled tool
// (poll): a fresh instance per call, and a warm pooled instance.
func BenchmarkCall(b *testing.B) {
	r := newRegistry(b, "poll")
	register(b, r, "poll", func(m *Manifest) { m.Name = "poll_pooled"; m.Isolation = IsolationPool; m.PoolSize = 2 })
	ctx := context.Background()
	args := map[string]any{"status": "SUCCESS"}
	for _, name := range []string{"poll", "poll_pooled"} {
		b.Run(name, func(b *testing.B) { benchCalls(b, r, name, args) })
	}
	b.Run("poll_parallel", func(b *testing.B) {
		tool, err := r.Resolve(ctx, "poll")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
					b.Error(err)
					return
				}
			}
		})
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

// benchCalls calls the tool name with args b.N times, one after the other.
func benchCalls(b *testing.B, r *Registry, name string, args map[string]any) {
	ctx := context.Background()
	tool, err := r.Resolve(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
			b.Fatal(err)
		}
	}
}
