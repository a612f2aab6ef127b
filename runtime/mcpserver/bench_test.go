package mcpserver

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// BenchmarkStartup measures what Claude Code waits for when it launches
// the server: runtime.Open on a warm compilation cache with 20 registered
// tools (the bundled ones plus test tools), and a client's initialize and
// tools/list against a fresh Server.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	cfg := runtime.Config{DBPath: filepath.Join(dir, "nano.db"), VaultKey: []byte("0123456789abcdef0123456789abcdef"), Logger: quietLogger(), CacheDir: runtimetest.CacheDir}
	ctx := context.Background()
	rt, err := runtime.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"secret_echo", "clock_random", "state_echo", "log_levels", "http_get", "exit3", "trap", "loop", "oob"} {
		m := testTool(b, name)
		if _, err := rt.RegisterToolLocal(ctx, m.Manifest, m.Wasm); err != nil {
			b.Fatal(err)
		}
	}
	recs, _ := rt.Tools(ctx)
	if err := rt.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d registered tools", len(recs))

	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rt, err := runtime.Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := rt.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	rt, err = runtime.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	for _, tc := range []struct {
		name    string
		connect func(b *testing.B, s *Server) *client.Client
	}{
		{name: "initialize in-process", connect: func(b *testing.B, s *Server) *client.Client {
			c, err := client.NewInProcessClient(s.MCP())
			if err != nil {
				b.Fatal(err)
			}
			return c
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := New(rt, &Options{AllowToolUpload: true, Logger: quietLogger()})
				c := tc.connect(b, s)
				initialize(b, ctx, c)
				if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
		})
	}
	b.Run("initialize stdio pipe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := New(rt, &Options{AllowToolUpload: true, Logger: quietLogger()})
			c, stop := openPipe(b, s)
			if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
				b.Fatal(fmt.Errorf("list tools: %w", err))
			}
			b.StopTimer()
			stop()
			b.StartTimer()
		}
	})
}
