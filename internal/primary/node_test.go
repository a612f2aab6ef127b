package primary

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Ensure two members share one database: the second forwards to the
// first, and what one writes the other reads.
func TestServeSharesOneDatabase(t *testing.T) {
	db, a, b := sharedPair(t)
	run := b.call(t, "run_program", map[string]any{
		"program": map[string]any{"name": "p", "steps": []any{map[string]any{"id": "v", "type": "tool", "tool": "validate_amount", "args": map[string]any{"amount": 10}}}},
	})
	if !strings.Contains(text(run), `"status":"success"`) {
		t.Fatalf("run through the forwarder: %s", text(run))
	}
	traces := a.call(t, "list_traces", map[string]any{})
	if !strings.Contains(text(traces), `"program_name":"p"`) {
		t.Fatalf("the primary does not see the forwarder's run: %s", text(traces))
	}
	fi, err := os.Stat(SocketPath(db))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a 0600 socket", fi.Mode())
	}
}

// Ensure a forwarder takes the database over when its primary stops, and
// its client keeps its session.
func TestServeTakeover(t *testing.T) {
	db, a, b := sharedPair(t)
	b.call(t, "list_traces", map[string]any{})
	a.cancel() // the primary is told to stop, as by SIGTERM
	if err := <-a.done; err == nil {
		t.Fatal("Serve returned nil on a cancelled context")
	}
	a.done <- nil // for the cleanup
	res := b.call(t, "verify_audit", map[string]any{})
	if !strings.Contains(text(res), `"ok":true`) {
		t.Fatalf("verify_audit after the takeover: %s", text(res))
	}
	if _, err := os.Stat(SocketPath(db)); err != nil {
		t.Fatalf("the new primary serves no socket: %v", err)
	}
	// A newcomer forwards to the new primary.
	c := join(t, db, Options{})
	c.call(t, "list_traces", map[string]any{})
}

// Ensure a primary whose own client left keeps serving the others until
// they leave too, and then releases the database.
func TestServeLingers(t *testing.T) {
	db, a, b := sharedPair(t)
	lingered := make(chan error, 1)
	go func() { lingered <- a.leave() }()
	b.call(t, "list_traces", map[string]any{})
	select {
	case err := <-lingered:
		t.Fatalf("the primary stopped (%v) while a forwarder was connected", err)
	default:
	}
	if err := b.leave(); err != nil {
		t.Fatalf("forwarder: %v", err)
	}
	if err := <-lingered; err != nil {
		t.Fatalf("primary: %v", err)
	}
	a.done <- nil
	b.done <- nil
	if _, err := os.Stat(SocketPath(db)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket outlived its primary: %v", err)
	}
	lock, err := tryLock(LockPath(db))
	if err != nil || lock == nil {
		t.Fatalf("the election lock outlived its primary: %v", err)
	}
	lock.Close()
}

// Ensure the failures of taking a database are clear errors, not hangs.
func TestServeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, db string)
		want  error
	}{
		{
			// A process holds the election lock but serves nothing.
			name: "lock held, no socket",
			setup: func(t *testing.T, db string) {
				lock, err := tryLock(LockPath(db))
				if err != nil || lock == nil {
					t.Fatalf("lock: %v", err)
				}
				t.Cleanup(func() { lock.Close() })
			},
			want: ErrNoPrimary,
		},
		{
			// Something that is not a primary answers on the socket.
			name: "foreign socket",
			setup: func(t *testing.T, db string) {
				ln, err := net.Listen("unix", SocketPath(db))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
			},
			want: ErrSocketBusy,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := dbPath(t)
			tc.setup(t, db)
			in, out := strings.NewReader(""), &strings.Builder{}
			if tc.want == ErrSocketBusy {
				// The foreign listener accepts, so a forwarder would
				// connect to it: only a would-be primary checks it.
				err := serveAsPrimary(t, db)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				return
			}
			err := Serve(t.Context(), in, out, Options{DBPath: db, Open: openFunc(db), WaitTimeout: 100 * time.Millisecond, Logger: discard})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), db) {
				t.Fatalf("got %v, want %v naming %s", err, tc.want, db)
			}
		})
	}
}

func serveAsPrimary(t *testing.T, db string) error {
	lock, err := tryLock(LockPath(db))
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	n := &node{opts: Options{DBPath: db, Open: openFunc(db), CloseTimeout: time.Second}, log: discard, sock: SocketPath(db), lockPath: LockPath(db)}
	p, err := n.becomePrimary(t.Context(), lock)
	if err == nil {
		p.close()
	}
	return err
}

// Ensure a socket left by a killed primary is replaced, not obeyed.
func TestServeReplacesStaleSocket(t *testing.T) {
	db := dbPath(t)
	ln, err := net.Listen("unix", SocketPath(db))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the name stays, nothing answers: a SIGKILLed primary's
	m := join(t, db, Options{})
	m.call(t, "list_traces", map[string]any{})
	fi, err := os.Stat(SocketPath(db))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket after replacement: %v %v", fi, err)
	}
}

// Ensure the socket is private whether it is bound in a private directory
// and renamed, or (for a path near the limit) in place.
func TestListenPrivate(t *testing.T) {
	base := t.TempDir()
	if len(base) > 60 {
		base = dbPath(t)
		base = base[:strings.LastIndexByte(base, '/')]
	}
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{name: "short path", path: base + "/a.db.sock", ok: true},
		{name: "near the limit", path: base + "/" + strings.Repeat("n", maxSocketPath-len(base)-1), ok: true},
		{name: "over the limit", path: base + "/" + strings.Repeat("n", maxSocketPath-len(base)), ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := listenPrivate(tc.path)
			if !tc.ok {
				if err == nil {
					ln.Close()
					t.Fatalf("listened on a %d-byte path", len(tc.path))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer os.Remove(tc.path)
			defer ln.Close()
			fi, err := os.Stat(tc.path)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v; want a 0600 socket", fi.Mode(), err)
			}
			go func() {
				if c, err := ln.Accept(); err == nil {
					if err := peerAllowed(c); err != nil {
						t.Errorf("own peer refused: %v", err)
					}
					c.Close()
				}
			}()
			c, err := net.Dial("unix", tc.path)
			if err != nil {
				t.Fatal(err)
			}
			c.Read(make([]byte, 1))
			c.Close()
			entries, _ := os.ReadDir(base)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".nanovm-sock-") {
					t.Fatalf("temporary directory left behind: %s", e.Name())
				}
			}
		})
	}
}
