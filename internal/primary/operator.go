package primary

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The operator channel lets the database's operator (the CLI on the same
// machine, same uid) act on a database a primary holds, as the operator:
// register and remove tools with source operator, clear idempotency keys,
// and the read and run commands the CLI has. It is not MCP: an MCP client
// can never reach it, even one forwarded over the same socket.
//
// The primary writes a random token to OperatorTokenPath (mode 0600) once
// the database is open, and removes it when it stops. A socket connection
// whose FIRST line is the hello request (OperatorHelloMethod, params
// {"token": …}) carrying that token is an operator session: its requests
// whose method starts with OperatorMethodPrefix go to
// Backend.Operator. A hello with a wrong or missing token, or a hello
// anywhere but first, is refused with an error and the session stays an
// ordinary MCP session. The forwarder sends only its client's own lines,
// so a forwarded client gets operator rights only by presenting the token,
// which only the database's owner can read.

// OperatorHelloMethod is the JSON-RPC method of the hello line.
const OperatorHelloMethod = "nano-vm-mcp/operator-hello"

// OperatorMethodPrefix starts the method of every operator request.
const OperatorMethodPrefix = "nano-vm-mcp/operator/"

// codeOperatorRefused answers a hello that does not open an operator
// session (implementation-defined server range).
const codeOperatorRefused = -32002

// codeOperatorFailed answers an operator request whose handler failed.
const codeOperatorFailed = -32003

// OperatorHelloTimeout bounds the wait for the primary's answer to the
// hello (a primary still opening the database answers once it is open).
const OperatorHelloTimeout = 30 * time.Second

// ErrOperatorRefused is returned by DialOperator when the primary does not
// accept the token (a token file left by a primary that died, or one
// replaced since it was read).
var ErrOperatorRefused = errors.New("the primary refused the operator token")

// OperatorTokenPath is the operator token file for the database at dbPath.
func OperatorTokenPath(dbPath string) string { return dbPath + ".operator-token" }

// OperatorFunc serves one operator request: method is without
// OperatorMethodPrefix, params the request's raw params (null when
// absent). A result is encoded as JSON; an error is answered as a JSON-RPC
// error whose data is the error's OperatorError when it wraps one.
type OperatorFunc func(ctx context.Context, method string, params json.RawMessage) (any, error)

// OperatorError is an operator request's failure as it crosses the socket:
// a code (a runtime error code, or empty) and a message.
type OperatorError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

func (e *OperatorError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// operatorGate is what a socket session needs to open an operator session.
type operatorGate struct {
	token  []byte
	handle OperatorFunc
}

func (g *operatorGate) accepts(token string) bool {
	return g != nil && len(token) > 0 && subtle.ConstantTimeCompare([]byte(token), g.token) == 1
}

// newOperatorToken writes a fresh token to path, mode 0600, replacing any
// file left there (the caller holds the election lock, so the name is
// its own): written to a private temporary file first, so that no reader
// sees a partial token.
func newOperatorToken(path string) ([]byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("operator token: %w", err)
	}
	token := []byte(hex.EncodeToString(raw))
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("operator token: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(token)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o600)); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("operator token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("operator token: %w", err)
	}
	return token, nil
}

// operatorHello is the hello request's params.
type operatorHello struct {
	Token string `json:"token"`
}

// OperatorClient is an operator session with a primary.
type OperatorClient struct {
	conn net.Conn
	out  *lineWriter

	mu      sync.Mutex
	next    int
	pending map[string]chan json.RawMessage
	err     error // set when the connection ended
	done    chan struct{}
}

// DialOperator opens an operator session with the primary serving the
// database at dbPath: it reads the token file, connects to the socket and
// sends the hello. It fails with an error wrapping fs.ErrNotExist when
// there is no token file (no primary, or one without an operator
// channel), the dial error when nothing answers on the socket, and
// ErrOperatorRefused when the primary refuses the token.
func DialOperator(ctx context.Context, dbPath string) (*OperatorClient, error) {
	token, err := os.ReadFile(OperatorTokenPath(dbPath))
	if err != nil {
		return nil, fmt.Errorf("operator session: %w", err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "unix", SocketPath(dbPath))
	if err != nil {
		return nil, fmt.Errorf("operator session: %w", err)
	}
	c := &OperatorClient{conn: conn, out: &lineWriter{w: conn}, pending: map[string]chan json.RawMessage{}, done: make(chan struct{})}
	go c.read()
	var ok struct {
		Operator bool `json:"operator"`
	}
	// A socket that accepts and never answers must not hang the CLI.
	hctx, cancel := context.WithTimeout(ctx, OperatorHelloTimeout)
	defer cancel()
	if err := c.call(hctx, OperatorHelloMethod, operatorHello{Token: string(bytes.TrimSpace(token))}, &ok); err != nil {
		conn.Close()
		var re *rpcCallError
		if errors.As(err, &re) && re.Code == codeOperatorRefused {
			return nil, fmt.Errorf("operator session on %s: %w: %s", SocketPath(dbPath), ErrOperatorRefused, re.Message)
		}
		return nil, fmt.Errorf("operator session on %s: %w", SocketPath(dbPath), err)
	}
	if !ok.Operator {
		conn.Close()
		return nil, fmt.Errorf("operator session on %s: %w", SocketPath(dbPath), ErrOperatorRefused)
	}
	return c, nil
}

// rpcCallError is a JSON-RPC error answer.
type rpcCallError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *rpcCallError) Error() string { return e.Message }

func (c *OperatorClient) read() {
	err := readLines(c.conn, true, func(line []byte) {
		e, err := parseEnvelope(line)
		if err != nil || !e.isResponse() {
			return // notifications and noise: an operator session has none
		}
		c.mu.Lock()
		ch := c.pending[idKey(e.ID)]
		delete(c.pending, idKey(e.ID))
		c.mu.Unlock()
		if ch != nil {
			ch <- line
		}
	}, nil)
	if err == nil {
		err = errors.New("the primary closed the connection")
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// Call sends the operator request method (without OperatorMethodPrefix)
// with params and decodes its result into result (when not nil). A
// failure the primary reports is returned as an *OperatorError; ctx
// cancelled closes the session, which cancels the request on the primary.
func (c *OperatorClient) Call(ctx context.Context, method string, params, result any) error {
	err := c.call(ctx, OperatorMethodPrefix+method, params, result)
	var re *rpcCallError
	if errors.As(err, &re) {
		oe := &OperatorError{Message: re.Message}
		if len(re.Data) > 0 {
			_ = json.Unmarshal(re.Data, oe)
		}
		return oe
	}
	return err
}

func (c *OperatorClient) call(ctx context.Context, method string, params, result any) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, err)
	}
	c.next++
	id := strconv.Itoa(c.next)
	ch := make(chan json.RawMessage, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.next, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := c.out.writeLine(msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	var line json.RawMessage
	select {
	case line = <-ch:
	case <-c.done:
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, err)
	case <-ctx.Done():
		c.conn.Close()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcCallError   `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", method, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("%s: decode result: %w", method, err)
		}
	}
	return nil
}

// Close ends the session.
func (c *OperatorClient) Close() error { return c.conn.Close() }

// operatorSession is one socket session's operator state.
type operatorSession struct {
	gate     *operatorGate
	first    bool // the next line is the connection's first
	operator bool
}

// intercept handles the lines the operator channel owns: the hello (first
// line only; elsewhere refused), and operator requests on an operator
// session. It returns false for every other line, which goes to MCP as
// usual (an operator method on an ordinary session: method not found).
func (s *operatorSession) intercept(ctx context.Context, e envelope, out *lineWriter, spawn func(func())) bool {
	first := s.first
	s.first = false
	switch {
	case e.Method == OperatorHelloMethod:
		if !e.isRequest() {
			return true
		}
		var h operatorHello
		_ = json.Unmarshal(e.Params, &h)
		if first && s.gate.accepts(h.Token) {
			s.operator = true
			b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": e.ID, "result": map[string]bool{"operator": true}})
			out.writeLine(b)
			return true
		}
		why := "wrong or missing token"
		if !first {
			why = "a hello is accepted only as a connection's first message"
		}
		out.writeLine(errorLine(e.ID, codeOperatorRefused, "operator hello refused: "+why, nil))
		return true
	case s.operator && strings.HasPrefix(e.Method, OperatorMethodPrefix) && e.isRequest():
		method := strings.TrimPrefix(e.Method, OperatorMethodPrefix)
		params := json.RawMessage(e.Params)
		if len(params) == 0 {
			params = json.RawMessage("null")
		}
		id := e.ID
		spawn(func() {
			res, err := callOperator(ctx, s.gate.handle, method, params)
			var b []byte
			if err != nil {
				oe := &OperatorError{Message: err.Error()}
				errors.As(err, &oe)
				b = errorLine(id, codeOperatorFailed, err.Error(), oe)
			} else if b, err = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": res}); err != nil {
				b = errorLine(id, codeInternal, "encode result: "+err.Error(), nil)
			}
			out.writeLine(b)
		})
		return true
	}
	return false
}

// callOperator calls h, turning a panic into an error.
func callOperator(ctx context.Context, h OperatorFunc, method string, params json.RawMessage) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("operator %s: internal error", method)
		}
	}()
	return h(ctx, method, params)
}
