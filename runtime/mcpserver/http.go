package mcpserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mark3labs/mcp-go/server"
)

// DefaultMaxBodyBytes is the request body cap when HTTPOptions.MaxBodyBytes
// is zero: 4 MiB, room for a base64 tool module of about 3 MiB.
const DefaultMaxBodyBytes = 4 << 20

// HTTPOptions configures HTTPHandler. The zero value serves without auth,
// to loopback Host names and same-machine or Origin-less clients only,
// with a 4 MiB body cap.
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
	// MaxBodyBytes caps a request body; a larger one is refused with 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives the transport's logs; nil means the Server's.
	Logger *slog.Logger
}

// HTTPHandler returns the HTTP transports: Streamable HTTP at /mcp, the
// legacy SSE pair GET /sse + POST /messages, and GET /health, behind the
// Host, Origin, bearer-auth and body-size guards (in that order; /health
// skips them all, so load balancers can probe it). Shutdown closes the
// sessions it opened.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
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
	mux.Handle("/mcp", streamable)
	mux.Handle("/sse", sse.SSEHandler())
	mux.Handle("/messages", sse.MessageHandler())

	g := &guard{opts: opts, log: log, next: mux}
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
	if r.URL.Path == "/health" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET /health")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	if !g.hostAllowed(r.Host) {
		g.log.Warn("http: refused Host", "host", r.Host, "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusForbidden, "forbidden_host",
			fmt.Sprintf("Host %q is not allowed (DNS-rebinding protection); the operator can add it to the allowed hosts", r.Host))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin) {
		g.log.Warn("http: refused Origin", "origin", origin, "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusForbidden, "forbidden_origin",
			fmt.Sprintf("Origin %q is not allowed; the operator can add it to the allowed origins", origin))
		return
	}
	if g.opts.APIKey != "" && !g.authorized(r) {
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
		body, err := io.ReadAll(io.LimitReader(r.Body, g.opts.MaxBodyBytes+1))
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
	g.next.ServeHTTP(w, r)
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
