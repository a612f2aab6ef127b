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
	// DefaultMaxConns caps the connections served at once; one more is
	// answered 503 and closed at once.
	DefaultMaxConns = 1024
)

func (o *HTTPOptions) fill() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.BodyGrace, DefaultBodyGrace)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MinBodyRate <= 0 {
		o.MinBodyRate = DefaultMinBodyRate
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// HTTPServer returns an http.Server serving HTTPHandler(opts) with opts'
// timeouts and header cap. Serve it on LimitListener(ln, opts) so the
// connection cap applies too. The whole-request and write timeouts are
// applied per request by the handler, not by http.Server, so that a
// stream is not cut for its length (see HTTPOptions).
func (s *Server) HTTPServer(opts HTTPOptions) *http.Server {
	opts.fill()
	log := opts.Logger
	if log == nil {
		log = s.log
	}
	return &http.Server{
		Handler:           s.HTTPHandler(opts),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// LimitListener caps the connections accepted from ln and still open at
// opts.MaxConns. A connection over the cap is not queued: it is answered
// "503 Service Unavailable" (with Retry-After) and closed at once, so the
// excess costs a moment, never a descriptor held.
func LimitListener(ln net.Listener, opts HTTPOptions) net.Listener {
	opts.fill()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &limitListener{Listener: ln, max: opts.MaxConns, log: log}
}

type limitListener struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	open    int
	refused int64
	warned  time.Time
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.refused++
		n, warn := l.refused, time.Since(l.warned) > 10*time.Second
		if warn {
			l.warned = time.Now()
		}
		l.mu.Unlock()
		if warn {
			l.log.Warn("http: connection cap reached; refusing connections with 503", "max_conns", l.max, "refused_so_far", n, "remote", c.RemoteAddr().String())
		}
		go refuseConn(c, l.max)
	}
}

// refuseConn answers a connection over the cap and closes it; the write is
// bounded, so a peer that reads nothing cannot hold it.
func refuseConn(c net.Conn, max int) {
	body := fmt.Sprintf(`{"error":"too_many_connections","message":"the server is at its cap of %d connections; retry shortly"}`+"\n", max)
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body)
	// Close without lingering on unread request bytes: a reset at worst.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.Close()
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
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
