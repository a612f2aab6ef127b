package primary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// DefaultWaitTimeout is how long a starting process waits for the holder
// of the election lock to answer on the socket.
const DefaultWaitTimeout = 3 * time.Second

// DefaultTakeoverTimeout is how long a forwarder whose primary went away
// waits for the database to be served again. It is longer than the
// start-up wait because a primary stopping gracefully holds the database
// until its runs in flight finish their current step.
const DefaultTakeoverTimeout = 30 * time.Second

// Backend is the database as opened by the process that becomes primary.
type Backend struct {
	// MCP serves every session: the primary's own client's and each
	// forwarder's.
	MCP *server.MCPServer
	// Close shuts the server down and closes the database. Serve calls it
	// once, after every session it served has ended; nil means nothing to
	// close.
	Close func(ctx context.Context) error
	// Operator, when set, serves operator sessions (see
	// OperatorTokenPath): the primary writes the token file and accepts
	// operator requests from a socket connection that presents it. Nil
	// means no operator channel.
	Operator OperatorFunc
}

// Options configures Serve. DBPath and Open are required; every other zero
// field means its documented default.
type Options struct {
	// DBPath is the database file. The socket is DBPath+".sock" and the
	// election lock DBPath+".sock.lock", both in its directory, mode 0600.
	DBPath string
	// Open opens the database and builds the MCP server over it. Serve
	// calls it in the process that becomes primary, at start-up or when it
	// takes over from a primary that went away.
	Open func(ctx context.Context) (*Backend, error)
	// WaitTimeout bounds the wait for a primary at start-up; default
	// DefaultWaitTimeout.
	WaitTimeout time.Duration
	// TakeoverTimeout bounds the wait for a new primary after the old one
	// went away; default DefaultTakeoverTimeout.
	TakeoverTimeout time.Duration
	// CloseTimeout bounds Backend.Close when the primary stops; default
	// 10 s.
	CloseTimeout time.Duration
	// Logger receives the package's logs; nil means slog.Default().
	Logger *slog.Logger
}

// SocketPath is the socket a primary serves for the database at dbPath.
func SocketPath(dbPath string) string { return dbPath + ".sock" }

// LockPath is the election lock for the database at dbPath.
func LockPath(dbPath string) string { return dbPath + ".sock.lock" }

// Serve serves one MCP client, speaking newline-delimited JSON-RPC on in
// and out (a stdio server's stdin and stdout), over the database at
// opts.DBPath shared with other processes: as the primary when it can take
// the database, else through the primary's socket, taking over when that
// primary goes away. It returns nil when in ends (a primary first waits
// for the other processes' sessions it serves to end), ctx's error when
// ctx is cancelled, and an error wrapping ErrNoPrimary when the database
// is held by a process that does not answer on the socket.
func Serve(ctx context.Context, in io.Reader, out io.Writer, opts Options) error {
	if opts.DBPath == "" || opts.Open == nil {
		return errors.New("shared serve: DBPath and Open are required")
	}
	if !supported {
		return ErrUnsupported
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	if opts.TakeoverTimeout <= 0 {
		opts.TakeoverTimeout = DefaultTakeoverTimeout
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := &node{opts: opts, log: opts.Logger, sock: SocketPath(opts.DBPath), lockPath: LockPath(opts.DBPath)}
	defer n.stop()
	f := newForwarder(out, n.log, n.connect)
	err := f.run(ctx, in)
	if err == nil && n.primary != nil {
		n.primary.linger(ctx)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

// node is this process's place in the group: a forwarder, or the primary.
type node struct {
	opts           Options
	log            *slog.Logger
	sock, lockPath string
	started        bool
	primary        *primary
}

// connect returns a session with a primary: a socket connection to the
// one serving, or this process's own server once it wins the election.
func (n *node) connect(ctx context.Context) (upstream, error) {
	if n.primary != nil {
		return nil, errors.New("shared: the primary's own session ended")
	}
	wait := n.opts.WaitTimeout
	if n.started {
		wait = n.opts.TakeoverTimeout
	}
	n.started = true
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c, err := net.DialTimeout("unix", n.sock, time.Second); err == nil {
			n.log.Info("shared: forwarding this client to the primary", "role", "forwarder", "socket", n.sock)
			return c, nil
		}
		lock, err := tryLock(n.lockPath)
		if err != nil {
			return nil, err
		}
		if lock != nil {
			p, err := n.becomePrimary(ctx, lock)
			if err != nil {
				return nil, err
			}
			n.primary = p
			return p.localSession(), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open %s: %w: nothing answered on %s within %s. Another nano-vm-mcp command (run, tool, trace, audit, secret, bench) or an HTTP server may be using it: wait for it to finish, or point --db (NANO_VM_MCP_DB) elsewhere",
				n.opts.DBPath, ErrNoPrimary, n.sock, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// becomePrimary serves the socket and opens the database, holding the
// election lock. Connections accepted before the database is open wait.
func (n *node) becomePrimary(ctx context.Context, lock *os.File) (*primary, error) {
	// Holding the lock makes any socket left behind stale — unless
	// something still answers on it, which is not ours to remove.
	if c, err := net.DialTimeout("unix", n.sock, time.Second); err == nil {
		c.Close()
		lock.Close()
		return nil, fmt.Errorf("serve %s: %w", n.sock, ErrSocketBusy)
	}
	if err := os.Remove(n.sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("remove stale socket %s: %w", n.sock, err)
	}
	p := &primary{log: n.log, sock: n.sock, lock: lock, ready: make(chan struct{}), closeTimeout: n.opts.CloseTimeout}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	ln, err := listenPrivate(n.sock)
	if err != nil {
		n.log.Warn("shared: serving this client only; other processes cannot share the database", "err", err)
	} else {
		p.ln = ln
		p.wg.Go(p.accept)
	}
	b, err := n.opts.Open(ctx)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("open %s as the primary: %w", n.opts.DBPath, err)
	}
	p.backend = b
	if p.ln != nil && b.Operator != nil {
		path := OperatorTokenPath(n.opts.DBPath)
		if token, err := newOperatorToken(path); err != nil {
			n.log.Warn("shared: no operator channel; CLI commands cannot run beside this server", "err", err)
		} else {
			p.gate, p.tokenPath = &operatorGate{token: token, handle: b.Operator}, path
		}
	}
	close(p.ready)
	n.log.Info("shared: serving the database", "role", "primary", "db", n.opts.DBPath, "socket", n.sock)
	return p, nil
}

func (n *node) stop() {
	if n.primary != nil {
		n.primary.close()
	}
}

// primary serves the database to this process's client and the socket's.
type primary struct {
	log          *slog.Logger
	sock         string
	lock         *os.File
	ln           net.Listener
	ready        chan struct{} // closed once backend is set
	backend      *Backend
	closeTimeout time.Duration
	// gate opens operator sessions; tokenPath is its token file, removed
	// at close. Both set before ready is closed, or never.
	gate      *operatorGate
	tokenPath string

	ctx    context.Context // cancelled at close: ends every session
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	remotes int           // socket sessions open
	idle    chan struct{} // closed when remotes drops to 0, if waited for
	nextID  int
	closed  bool
}

func (p *primary) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Warn("shared: accept", "err", err)
			}
			return
		}
		if err := peerAllowed(c); err != nil {
			p.log.Warn("shared: refused a connection", "err", err)
			c.Close()
			continue
		}
		p.mu.Lock()
		p.remotes++
		p.nextID++
		id := "socket-" + strconv.Itoa(p.nextID)
		p.mu.Unlock()
		p.wg.Go(func() {
			defer p.release()
			defer c.Close()
			select {
			case <-p.ready:
			case <-p.ctx.Done():
				return
			}
			if err := serveConn(p.ctx, p.backend.MCP, c, id, true, p.gate, p.log); err != nil {
				p.log.Debug("shared: session ended", "session", id, "err", err)
			}
		})
	}
}

func (p *primary) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remotes--
	if p.remotes == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// localSession connects this process's own client to its server.
func (p *primary) localSession() upstream {
	client, srv := net.Pipe()
	p.wg.Go(func() {
		defer srv.Close()
		if err := serveConn(p.ctx, p.backend.MCP, srv, "local", true, nil, p.log); err != nil {
			p.log.Debug("shared: local session ended", "err", err)
		}
	})
	return client
}

// linger keeps serving the socket, after this process's own client left,
// until the other processes' sessions end or ctx is cancelled: stopping
// earlier would interrupt their runs for a takeover.
func (p *primary) linger(ctx context.Context) {
	for {
		p.mu.Lock()
		if p.remotes == 0 {
			p.mu.Unlock()
			return
		}
		if p.idle == nil {
			p.idle = make(chan struct{})
		}
		idle, n := p.idle, p.remotes
		p.mu.Unlock()
		p.log.Info("shared: client gone; still serving other processes' sessions", "sessions", n)
		select {
		case <-idle:
		case <-ctx.Done():
			return
		}
	}
}

// close stops serving: the socket goes first, so no one new connects to a
// primary on its way out; the sessions end (forwarders take over); the
// database closes; the election lock is released last, so the successor
// finds the database free.
func (p *primary) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		// The lock is still held, so the name is still ours.
		os.Remove(p.sock)
	}
	if p.tokenPath != "" {
		os.Remove(p.tokenPath)
	}
	p.cancel()
	p.wg.Wait()
	if p.backend != nil && p.backend.Close != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.closeTimeout)
		if err := p.backend.Close(ctx); err != nil {
			p.log.Warn("shared: close the database", "err", err)
		}
		cancel()
	}
	p.lock.Close()
}

// ServeSocket serves the database's socket for a process that holds the
// database without being a stdio primary — an HTTP server — so that stdio
// servers started on the same database forward their clients to it, and
// CLI commands reach it through the operator channel (b.Operator). It
// takes the election lock, so no stdio process tries to become primary
// while it serves. b.Close is not called: the caller closes its database.
// stop closes the socket, the token and the lock; it waits for the socket
// sessions to end, which the caller ends by shutting b.MCP down first or
// by cancelling their requests.
func ServeSocket(dbPath string, b *Backend, log *slog.Logger) (stop func(), err error) {
	if !supported {
		return nil, ErrUnsupported
	}
	if log == nil {
		log = slog.Default()
	}
	lock, err := tryLock(LockPath(dbPath))
	if err != nil {
		return nil, err
	}
	if lock == nil {
		return nil, fmt.Errorf("serve %s: the election lock %s is held by another process", SocketPath(dbPath), LockPath(dbPath))
	}
	served := *b
	served.Close = nil
	n := &node{opts: Options{DBPath: dbPath, Logger: log, CloseTimeout: 10 * time.Second,
		Open: func(context.Context) (*Backend, error) { return &served, nil }}, log: log, sock: SocketPath(dbPath), lockPath: LockPath(dbPath)}
	p, err := n.becomePrimary(context.Background(), lock)
	if err != nil {
		return nil, err
	}
	return p.close, nil
}
