package mcpserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Defaults of the HTTP server's limits (HTTPOptions fields left zero).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers, and the
	// wait for the first request on a new connection.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request body.
	DefaultReadTimeout = 5 * time.Minute
	// DefaultMinBodyRate is the slowest a request body may arrive, in bytes
	// per second on average, after DefaultBodyGrace: a body that trickles
	// is cut with 408.
	DefaultMinBodyRate = 16 << 10
	// DefaultBodyGrace is how long a body may take before the rate applies.
	DefaultBodyGrace = 10 * time.Second
	// DefaultWriteTimeout bounds each write of a response: a client that
	// stops reading is cut. A stream (SSE, a run's progress) lives as long
	// as its writes go through, so it is not cut by its length.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection with no request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes caps a request's headers (and request line).
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConns caps the connections served at once; see
	// HTTPServer for what happens to one more.
	DefaultMaxConns = 1024
)

// orDefault sets *p to d when *p is zero or negative: an option left
// unset takes its default.
func orDefault[T ~int | ~int64 | ~float64](p *T, d T) {
	if *p <= 0 {
		*p = d
	}
}

func (o *HTTPOptions) fill() {
	orDefault(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&o.ReadTimeout, DefaultReadTimeout)
	orDefault(&o.BodyGrace, DefaultBodyGrace)
	orDefault(&o.WriteTimeout, DefaultWriteTimeout)
	orDefault(&o.IdleTimeout, DefaultIdleTimeout)
	orDefault(&o.MinBodyRate, DefaultMinBodyRate)
	orDefault(&o.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&o.MaxConns, DefaultMaxConns)
	orDefault(&o.MaxBodyBytes, DefaultMaxBodyBytes)
}

// HTTPServer returns an http.Server serving HTTPHandler(opts) with opts'
// timeouts and header cap, and ln wrapped to cap the connections at
// opts.MaxConns; serve the one on the other (hs.Serve(l)). The
// whole-request and write timeouts are applied per request by the
// handler, not by http.Server, so that a stream is not cut for its length
// (see HTTPOptions).
//
// A connection over the cap is not queued. When the server is full, the
// longest-idle keep-alive connection (or one accepted over a second ago
// that has sent nothing yet) is closed to make room, since its client
// loses nothing but a reconnect; when every connection is busy, the new
// one is answered "503 Service Unavailable" (Retry-After: 1) and closed
// at once. Idle or silent connections therefore cannot keep working
// clients out.
func (s *Server) HTTPServer(ln net.Listener, opts HTTPOptions) (*http.Server, net.Listener) {
	opts.fill()
	log := opts.Logger
	if log == nil {
		log = s.log
	}
	l := &limitListener{Listener: ln, max: opts.MaxConns, log: log, conns: map[*limitedConn]struct{}{}}
	hs := &http.Server{
		Handler:           s.HTTPHandler(opts),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         l.connState,
	}
	return hs, l
}

// limitListener caps the connections accepted and still open; see
// HTTPServer.
type limitListener struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	conns   map[*limitedConn]struct{}
	refused int64
	evicted int64
	warned  time.Time
}

// evictAfter is how long a new connection may stay silent before it may
// be closed to make room.
const evictAfter = time.Second

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, state: http.StateNew, since: time.Now()}
		l.mu.Lock()
		var victim *limitedConn
		if len(l.conns) >= l.max {
			victim = l.victimLocked()
		}
		if len(l.conns) < l.max || victim != nil {
			if victim != nil {
				delete(l.conns, victim)
				victim.released = true
				l.evicted++
			}
			l.conns[lc] = struct{}{}
			l.mu.Unlock()
			if victim != nil {
				victim.Conn.Close()
			}
			return lc, nil
		}
		l.refused++
		n, warn := l.refused, time.Since(l.warned) > 10*time.Second
		if warn {
			l.warned = time.Now()
		}
		l.mu.Unlock()
		if warn {
			l.log.Warn("http: connection cap reached with every connection busy; refusing connections with 503", "max_conns", l.max, "refused_so_far", n, "remote", c.RemoteAddr().String())
		}
		go refuseConn(c, l.max)
	}
}

// victimLocked picks the connection to close for a newcomer: the one idle
// the longest, else the oldest that has sent nothing for evictAfter.
func (l *limitListener) victimLocked() *limitedConn {
	var idle, silent *limitedConn
	now := time.Now()
	for c := range l.conns {
		switch {
		case c.state == http.StateIdle:
			if idle == nil || c.since.Before(idle.since) {
				idle = c
			}
		case c.state == http.StateNew && now.Sub(c.since) >= evictAfter:
			if silent == nil || c.since.Before(silent.since) {
				silent = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return silent
}

func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	lc.state, lc.since = st, time.Now()
	l.mu.Unlock()
}

// refuseConn answers a connection over the cap and closes it; the write is
// bounded, so a peer that reads nothing cannot hold it.
func refuseConn(c net.Conn, max int) {
	body := fmt.Sprintf(`{"error":"too_many_connections","message":"the server is at its cap of %d connections, all busy; retry shortly"}`+"\n", max)
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.Close()
}

type limitedConn struct {
	net.Conn
	l *limitListener
	// Guarded by l.mu.
	state    http.ConnState
	since    time.Time
	released bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	if !c.released {
		c.released = true
		delete(c.l.conns, c)
	}
	c.l.mu.Unlock()
	return err
}

// errBodyTooSlow is the error a rateReader returns when the body's
// deadline passed.
var errBodyTooSlow = errors.New("request body arrived too slowly")

// rateReader reads a request body under a read deadline that moves with
// the bytes received: the body has opts.BodyGrace plus one second per
// MinBodyRate bytes, and never more than ReadTimeout in all. At the end of
// the body the deadline is lifted, so a response that streams (SSE, a
// run's progress) is not cut by the connection's background read.
type rateReader struct {
	r        io.Reader
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     int64
	max      time.Duration
	n        int64
	timedOut bool
}

func newRateReader(w http.ResponseWriter, body io.Reader, o HTTPOptions) *rateReader {
	rr := &rateReader{r: body, rc: http.NewResponseController(w), start: time.Now(), grace: o.BodyGrace, rate: o.MinBodyRate, max: o.ReadTimeout}
	rr.extend()
	return rr
}

func (rr *rateReader) deadline() time.Time {
	d := rr.grace + time.Duration(float64(rr.n)/float64(rr.rate)*float64(time.Second))
	if d > rr.max {
		d = rr.max
	}
	return rr.start.Add(d)
}

func (rr *rateReader) extend() { _ = rr.rc.SetReadDeadline(rr.deadline()) }

func (rr *rateReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.n += int64(n)
	switch {
	case err == io.EOF:
		_ = rr.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		rr.timedOut = true
		err = fmt.Errorf("%w: %d bytes in %s", errBodyTooSlow, rr.n, time.Since(rr.start).Round(time.Millisecond))
	case n > 0:
		rr.extend()
	}
	return n, err
}

// writeDeadline bounds each write of a response to d from its start, so
// a client that stops reading is cut while a stream that keeps flowing is
// not; it keeps http.Flusher (SSE needs it) and unwraps for
// http.ResponseController.
type writeDeadline struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func newWriteDeadline(w http.ResponseWriter, d time.Duration) *writeDeadline {
	return &writeDeadline{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
}

func (w *writeDeadline) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *writeDeadline) Write(p []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(p)
}

func (w *writeDeadline) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *writeDeadline) Flush() {
	w.arm()
	_ = w.rc.Flush()
}

func (w *writeDeadline) FlushError() error {
	w.arm()
	return w.rc.Flush()
}

func (w *writeDeadline) Unwrap() http.ResponseWriter { return w.ResponseWriter }
