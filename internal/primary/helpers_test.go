package primary

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/mcpserver"
)

var (
	testVaultKey = []byte("0123456789abcdef0123456789abcdef")
	// cacheDir is the compiled-code cache every test's runtime shares.
	cacheDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nanovm-shared-test")
	if err != nil {
		panic(err)
	}
	cacheDir = filepath.Join(dir, "cache")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// openFunc opens the real runtime and MCP server over db.
func openFunc(db string) func(context.Context) (*Backend, error) {
	return func(ctx context.Context) (*Backend, error) {
		rt, err := runtime.Open(ctx, runtime.Config{DBPath: db, CacheDir: cacheDir, VaultKey: testVaultKey, Logger: discard})
		if err != nil {
			return nil, err
		}
		srv := mcpserver.New(rt, &mcpserver.Options{Logger: discard, AllowToolUpload: true})
		return &Backend{MCP: srv.MCP(), Close: func(ctx context.Context) error {
			srv.Shutdown(ctx)
			return rt.Close()
		}}, nil
	}
}

// member is one Serve call with an MCP client on its pipes, standing in
// for one stdio server process.
type member struct {
	c      *client.Client
	stdin  *io.PipeWriter // the client's side of Serve's input
	cancel context.CancelFunc
	done   chan error
}

func join(t testing.TB, db string, opts Options) *member {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{stdin: inW, cancel: cancel, done: make(chan error, 1)}
	opts.DBPath = db
	if opts.Open == nil {
		opts.Open = openFunc(db)
	}
	if opts.Logger == nil {
		opts.Logger = discard
	}
	go func() {
		err := Serve(ctx, inR, outW, opts)
		outW.Close()
		m.done <- err
	}()
	m.c = client.NewClient(transport.NewIO(outR, inW, io.NopCloser(eofReader{})))
	ictx, icancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer icancel()
	if err := m.c.Start(ictx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = "2025-06-18"
	init.Params.ClientInfo = mcp.Implementation{Name: "shared-test", Version: "1"}
	if _, err := m.c.Initialize(ictx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	t.Cleanup(func() {
		m.cancel()
		m.stdin.Close()
		m.c.Close()
		<-m.done
	})
	return m
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// leave closes the member's input, as a client quitting does, and returns
// Serve's result.
func (m *member) leave() error {
	m.stdin.Close()
	return <-m.done
}

func (m *member) call(t testing.TB, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := m.c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %v", name, res.Content)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	s := ""
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			s += tc.Text
		}
	}
	return s
}

// sharedPair joins two members to one fresh database, in turn: the first
// is the primary, the second forwards to it.
func sharedPair(t testing.TB) (db string, primary, forwarder *member) {
	t.Helper()
	db = dbPath(t)
	primary = join(t, db, Options{})
	return db, primary, join(t, db, Options{})
}

func dbPath(t testing.TB) string {
	// t.TempDir can be long; keep the socket path under the Unix limit.
	dir, err := os.MkdirTemp("", "sh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, fmt.Sprintf("%s.db", "t"))
}
