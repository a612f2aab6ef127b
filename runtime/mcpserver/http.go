package mcpserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
	"github.com/nanovm/nano-vm-mcp/store"
)

// DefaultMaxBodyBytes is the request body cap when HTTPOptions.MaxBodyBytes
// is zero: 32 MiB, room for register_tool with a 20 MiB module, which
// base64 makes about 27 MiB of JSON. The body is held in memory while it
// is handled, so the worst case is about MaxConns × MaxBodyBytes.
const DefaultMaxBodyBytes = 32 << 20

// HTTPOptions configures HTTPHandler and HTTPServer. The
// zero value serves without auth, to loopback Host names and same-machine
// or Origin-less clients only, with the Default* limits of this package.
type HTTPOptions struct {
	// APIKey, when set (NANO_VM_MCP_API_KEY), is the bearer token every
	// request but GET /health must carry; "" means no auth.
	APIKey string
	// AllowedHosts extends the Host header check beyond localhost,
	// 127.0.0.1 and [::1]: "host" accepts any port, "host:port" only that
	// one, "*" any Host (turning the DNS-rebinding check off — only behind
	// a proxy that checks Host itself). An operator behind a reverse proxy
	// adds the public name clients use, e.g. "mcp.example.com"; the CLI
	// adds the bind host.
	AllowedHosts []string
	// AllowedOrigins lists the browser origins ("https://app.example.com",
	// scheme://host[:port], or "*") allowed besides loopback ones. A
	// request without Origin (every non-browser client) is always allowed.
	AllowedOrigins []string
	// Stateless serves /mcp without sessions (mcp-go's WithStateLess):
	// no Mcp-Session-Id is issued, and every request stands alone, as in
	// the stateless protocol revision 2026-07-28, so any replica of a
	// shared database can answer any request behind a load balancer
	// without affinity. Server-initiated messages outside a request (the
	// GET stream: tools/list_changed) are not sent then. serve sets it
	// for a PostgreSQL database.
	Stateless bool
	// MaxBodyBytes caps a request body; a larger one is refused with 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a request's headers (and waiting
	// for a new connection's first request); default 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request body; default 5 min.
	ReadTimeout time.Duration
	// MinBodyRate (bytes/s) and BodyGrace: a request body must arrive
	// within BodyGrace plus one second per MinBodyRate bytes, else it is
	// cut with 408 and the connection closed; defaults 16 KiB/s and 10 s.
	MinBodyRate int64
	BodyGrace   time.Duration
	// WriteTimeout bounds each write of a response, so a client that stops
	// reading is cut; a stream whose writes go through lives on (SSE keeps
	// itself alive with pings); default 60 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request;
	// default 60 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers; default 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps the connections open at once (HTTPServer); at the cap
	// an idle keep-alive connection is closed to make room, and when all
	// are busy the newcomer is answered 503 and closed; default 1024.
	MaxConns int
	// Logger receives the transport's logs; nil means the Server's.
	Logger *slog.Logger
}

// HTTPHandler returns the HTTP transports: Streamable HTTP at /mcp, the
// legacy SSE pair GET /sse + POST /messages, the runtime's Prometheus
// metrics at GET /metrics, GET /health, and the run viewer at /ui/
// (runtime/viewer), behind the Host, Origin, bearer-auth and body-size
// guards (in that order; /health skips them all, so load balancers can
// probe it; the viewer's static files skip the bearer check, holding no
// data: its API needs the token; /metrics needs the same token as /mcp —
// MetricsHandler serves it without one on an address of the operator's).
// Shutdown closes the sessions it opened.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	opts.fill()
	log := opts.Logger
	if log == nil {
		log = s.log
	}
	// Our own Host check replaces mcp-go's loopback-only one, which would
	// refuse a proxy's public name even when the operator allowed it.
	streamable := server.NewStreamableHTTPServer(s.mcp,
		server.WithEndpointPath("/mcp"),
		server.WithDisableLocalhostProtection(true),
		server.WithStreamableHTTPLogger(slog.New(filterBarrier{log.Handler()})),
		server.WithStateLess(opts.Stateless),
	)
	sse := server.NewSSEServer(s.mcp,
		server.WithSSEEndpoint("/sse"),
		server.WithMessageEndpoint("/messages"),
		server.WithSSEDisableLocalhostProtection(true),
		server.WithKeepAlive(true),
	)
	s.onShutdown(func(ctx context.Context) error {
		sse.CloseSessions()
		return streamable.Shutdown(ctx)
	})

	mux := http.NewServeMux()
	if opts.Stateless {
		mux.Handle("/mcp", clientNamedSessions(streamable))
	} else {
		mux.Handle("/mcp", streamable)
	}
	mux.Handle("/sse", sse.SSEHandler())
	mux.Handle("/messages", sse.MessageHandler())
	mux.Handle("GET /metrics", s.rt.Metrics().Handler())
	ui := viewer.Handler(viewer.Local(s.rt), &viewer.Options{Logger: log, Version: s.opts.Version, Where: "HTTP server"})
	mux.Handle("/ui", ui)
	mux.Handle(viewer.Prefix, ui)
	opts.Logger = log
	return Guard(mux, opts)
}

// Guard puts next behind HTTPHandler's guards, configured by opts (its
// limits filled with the defaults): the Host and Origin checks, the
// bearer token when opts.APIKey is set (GET /health and the viewer's
// static files excepted, see viewer.Public), the body cap and rate, and
// the per-write deadline. "nano-vm-mcp ui" serves the viewer behind it.
func Guard(next http.Handler, opts HTTPOptions) http.Handler {
	opts.fill()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &guard{opts: opts, log: log, next: next}
	g.keyHash = sha256.Sum256([]byte(opts.APIKey))
	for _, h := range opts.AllowedHosts {
		g.hosts = append(g.hosts, strings.ToLower(strings.TrimSpace(h)))
	}
	for _, o := range opts.AllowedOrigins {
		g.origins = append(g.origins, strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/")))
	}
	return g
}

// guard is the HTTP front door.
type guard struct {
	opts    HTTPOptions
	log     *slog.Logger
	next    http.Handler
	keyHash [sha256.Size]byte
	hosts   []string
	origins []string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Each write gets WriteTimeout from its start; armed now too, for the
	// "100 Continue" the server may write when the body is first read,
	// and again on the way out, for the final flush after the handler.
	wd := newWriteDeadline(w, g.opts.WriteTimeout)
	wd.arm()
	defer wd.arm()
	w = wd
	if r.Body != nil && r.Body != http.NoBody {
		// From here on the body is read under the rate rule, also when it
		// is refused unread and the server drains it after the handler.
		r.Body = rateBody{newRateReader(w, r.Body, g.opts), r.Body}
	}
	// A request refused with its body unread closes its connection after
	// at most evictAfter: else the server drains the body after the
	// handler, and a client that announces one and sends nothing holds a
	// busy connection (one the cap cannot close) for the whole body
	// grace, without any token. What was already sent is still read
	// (so the close does not reset the answer away); a larger body is not
	// read at all (Go closes early past 256 KiB).
	unread := r.ContentLength != 0
	refuse := func() {
		if unread {
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(evictAfter))
		}
	}
	if r.URL.Path == "/health" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			refuse()
			writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET /health")
			return
		}
		refuse() // the body of a GET /health is never read either
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	if !g.hostAllowed(r.Host) {
		refuse()
		g.log.Warn("http: refused Host", "host", store.Clip(r.Host), "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusForbidden, "forbidden_host",
			fmt.Sprintf("Host %s is not allowed (DNS-rebinding protection); the operator can add it to the allowed hosts", store.Clip(r.Host)))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin) {
		refuse()
		g.log.Warn("http: refused Origin", "origin", store.Clip(origin), "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusForbidden, "forbidden_origin",
			fmt.Sprintf("Origin %s is not allowed; the operator can add it to the allowed origins", store.Clip(origin)))
		return
	}
	if g.opts.APIKey != "" && !g.authorized(r) && !viewer.Public(r) {
		refuse()
		w.Header().Set("WWW-Authenticate", `Bearer realm="nano-vm-mcp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	if r.Body != nil && r.Method == http.MethodPost {
		if r.ContentLength > g.opts.MaxBodyBytes {
			writeTooLarge(w, g.opts.MaxBodyBytes)
			return
		}
		// Read the body here, bounded, so an oversized chunked body also
		// gets a clean 413 rather than whatever error the transport makes
		// of a truncated read.
		// One allocation when the length is declared (a 27 MB upload
		// would otherwise regrow the buffer a dozen times).
		var buf bytes.Buffer
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength) + bytes.MinRead)
		}
		_, err := buf.ReadFrom(io.LimitReader(r.Body, g.opts.MaxBodyBytes+1))
		body := buf.Bytes()
		if errors.Is(err, errBodyTooSlow) {
			g.log.Warn("http: cut a slow request body", "remote", r.RemoteAddr, "err", err)
			w.Header().Set("Connection", "close")
			writeJSONError(w, http.StatusRequestTimeout, "request_timeout",
				fmt.Sprintf("the request body arrived too slowly (%v); it must arrive within %s plus 1 s per %d bytes, and within %s in all", err, g.opts.BodyGrace, g.opts.MinBodyRate, g.opts.ReadTimeout))
			return
		}
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+err.Error())
			return
		}
		if int64(len(body)) > g.opts.MaxBodyBytes {
			writeTooLarge(w, g.opts.MaxBodyBytes)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	g.next.ServeHTTP(w, r.WithContext(withTransport(r.Context(), telemetry.TransportTCP)))
}

// rateBody is a request body read through a rateReader.
type rateBody struct {
	*rateReader
	io.Closer
}

// authorized compares the bearer token in constant time; hashing both
// sides first keeps the compare's time independent of the key's length.
func (g *guard) authorized(r *http.Request) bool {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], g.keyHash[:]) == 1
}

// hostAllowed accepts loopback names on any port and the configured hosts.
func (g *guard) hostAllowed(hostport string) bool {
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if isLoopbackName(host) {
		return true
	}
	for _, a := range g.hosts {
		if a == "*" || a == hostport || strings.Trim(a, "[]") == host {
			return true
		}
	}
	return false
}

// originAllowed accepts loopback origins (local tools such as an MCP
// inspector) and the configured ones.
func (g *guard) originAllowed(origin string) bool {
	origin = strings.ToLower(strings.TrimRight(origin, "/"))
	for _, a := range g.origins {
		if a == "*" || a == origin {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false // includes "null", sent by sandboxed frames and file: pages
	}
	return isLoopbackName(u.Hostname())
}

func isLoopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// IsLoopback reports whether a bind address ("host:port", a bare host, or
// ":port") listens on loopback only. An empty host (":8000"), 0.0.0.0 and
// :: listen on every interface, so they are not loopback; a name other
// than localhost is not assumed to be. The CLI warns loudly when serving
// HTTP without an API key on a non-loopback address.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	return isLoopbackName(host)
}

func writeTooLarge(w http.ResponseWriter, max int64) {
	writeJSONError(w, http.StatusRequestEntityTooLarge, "request_too_large",
		fmt.Sprintf("the request body is over the %d-byte limit", max))
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// clientNamedKey marks a request whose Mcp-Session-Id, if any, the client
// chose itself (stateless /mcp, where mcp-go passes the header through
// unchecked): it names no session the server issued, so calls made for it
// get no session share (see handle).
type clientNamedKey struct{}

func clientNamedSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientNamedKey{}, true)))
	})
}

// issuedSession returns the id of the MCP session the server issued that
// ctx's request came on, or "".
func issuedSession(ctx context.Context) string {
	if named, _ := ctx.Value(clientNamedKey{}).(bool); named {
		return ""
	}
	return sessionOf(ctx)
}
