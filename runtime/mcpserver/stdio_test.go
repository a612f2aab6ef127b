package mcpserver

import (
	"context"
	"io"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
)

// pipeClient serves s over a pair of real pipes and returns an
// initialized client on the other ends, stopped at cleanup.
func pipeClient(tb testing.TB, s *Server) *client.Client {
	tb.Helper()
	c, stop := openPipe(tb, s)
	tb.Cleanup(stop)
	return c
}

// openPipe is pipeClient with the stop left to the caller: stop closes the
// client and waits for ServeStdio to return (mcp-go's stdio session is
// process-wide, so two must not overlap).
func openPipe(tb testing.TB, s *Server) (*client.Client, func()) {
	tb.Helper()
	inR, inW := io.Pipe()   // client → server
	outR, outW := io.Pipe() // server → client
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeStdio(ctx, inR, outW)
		outW.Close()
	}()
	c := client.NewClient(transport.NewIO(outR, inW, nil), client.WithLegacyProtocolOnly())
	initialize(tb, ctx, c)
	return c, func() {
		_ = c.Close() // closes inW: the server sees EOF
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ServeStdio: %v", err)
		}
	}
}

// Ensure the stdio transport serves a real client over pipes: the payment
// pipeline, a tool error, and an unknown tool, and the stream stays usable.
func TestStdio(t *testing.T) {
	s := newServer(t, nil)
	c := pipeClient(t, s)
	paymentOverClient(t, s, c)
	e := toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program": `{"steps":[]}`}))
	if e["error"] != "invalid_program" {
		t.Fatalf("invalid program: %v", e)
	}
	unknownToolRefused(t, c, "nope")
}
