package primary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
)

// reinitTimeout bounds the wait for a new primary's answer to the re-sent
// initialize; a primary that takes longer is treated as lost too.
const reinitTimeout = 30 * time.Second

// upstream is a connection to the server of the session: a Unix socket to
// the primary, or a pipe to this process's own server once it is primary.
type upstream interface {
	io.ReadWriteCloser
}

// pendingReq is a request sent upstream and not yet answered.
type pendingReq struct {
	seq  uint64
	line []byte
	env  envelope
	// sends counts the upstreams the request was written to in full. One
	// never written (the write failed: nothing was read) is always sent
	// again; a retryable one goes to at most maxSends, so a request that
	// kills every primary it reaches cannot take the whole group down.
	sends int
}

const maxSends = 2

// forwarder pumps one client's messages to the current upstream and back,
// and carries the session across a change of primary.
type forwarder struct {
	out     *lineWriter // the client's side (stdout)
	log     *slog.Logger
	connect func(context.Context) (upstream, error)

	mu          sync.Mutex
	seq         uint64
	pending     map[string]*pendingReq
	policy      retryPolicy
	initLine    []byte // the client's initialize request, to re-initialize
	initialized bool   // the client sent notifications/initialized
	levelLine   []byte // the client's last logging/setLevel, to re-initialize
	reinits     int
	swallow     map[string]chan struct{} // re-sent ids → closed on their response
	takeovers   int
}

func newForwarder(out io.Writer, log *slog.Logger, connect func(context.Context) (upstream, error)) *forwarder {
	return &forwarder{
		out: &lineWriter{w: out}, log: log, connect: connect,
		pending: map[string]*pendingReq{}, policy: retryPolicy{safeTools: map[string]bool{}},
		swallow: map[string]chan struct{}{},
	}
}

// run forwards until the client's input ends (nil) or ctx is cancelled,
// or until no primary can be reached (the error says why).
func (f *forwarder) run(ctx context.Context, in io.Reader) error {
	lines := make(chan []byte)
	inDone := make(chan error, 1)
	go func() {
		inDone <- readLines(in, false, func(l []byte) {
			select {
			case lines <- l:
			case <-ctx.Done():
			}
		}, f.clientTooLong)
		close(lines)
	}()

	up, lost, err := f.attach(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if err := <-inDone; err != nil {
					return fmt.Errorf("read client: %w", err)
				}
				return nil
			}
			p := f.noteFromClient(line)
			if err := writeLine(up, line); err == nil {
				f.sent(p)
				continue
			}
			// The primary is gone; the pump sees it too. The line is
			// pending (if a request) and is retried or answered below.
			up.Close()
			<-lost
		case <-lost:
		case <-ctx.Done():
			return ctx.Err()
		}
		if up, lost, err = f.attach(ctx, up); err != nil {
			return err
		}
	}
}

func writeLine(w io.Writer, line []byte) error {
	return (&lineWriter{w: w}).writeLine(line)
}

// noteFromClient records what a takeover needs to know about a client
// message before it is sent: requests awaiting a response and the
// session's set-up messages.
func (f *forwarder) noteFromClient(line []byte) *pendingReq {
	e, err := parseEnvelope(line)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e.Method {
	case "initialize":
		f.initLine = line
	case "notifications/initialized":
		f.initialized = true
	case "logging/setLevel":
		f.levelLine = line
	case "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		if json.Unmarshal(e.Params, &p) == nil && len(p.RequestID) > 0 {
			delete(f.pending, idKey(p.RequestID))
		}
	}
	if !e.isRequest() {
		return nil
	}
	f.seq++
	p := &pendingReq{seq: f.seq, line: line, env: e}
	f.pending[idKey(e.ID)] = p
	return p
}

// sent records that p (nil for a message that is not a request) reached
// an upstream.
func (f *forwarder) sent(p *pendingReq) {
	if p == nil {
		return
	}
	f.mu.Lock()
	p.sends++
	f.mu.Unlock()
}

// pump copies the upstream's messages to the client until the upstream
// ends, then closes lost.
func (f *forwarder) pump(up io.Reader, lost chan<- struct{}) {
	defer close(lost)
	err := readLines(up, true, f.fromUpstream, f.upstreamTooLong)
	if err != nil {
		f.log.Debug("shared: upstream read ended", "err", err)
	}
}

func (f *forwarder) fromUpstream(line []byte) {
	if e, err := parseEnvelope(line); err == nil && e.isResponse() {
		key := idKey(e.ID)
		f.mu.Lock()
		if done, ok := f.swallow[key]; ok {
			delete(f.swallow, key)
			f.mu.Unlock()
			close(done)
			return
		}
		if p := f.pending[key]; p != nil {
			delete(f.pending, key)
			if p.env.Method == "tools/list" {
				f.policy.learnTools(json.RawMessage(e.Result))
			}
		}
		f.mu.Unlock()
	}
	if err := f.out.writeLine(line); err != nil {
		f.log.Debug("shared: client write failed", "err", err)
	}
}

// clientTooLong answers a client message over maxLine here, without
// sending it upstream: the stream goes on, and so does every session the
// primary serves.
func (f *forwarder) clientTooLong(o oversized) {
	f.log.Warn("shared: skipped an oversized client message", "bytes", o.N, "limit", maxLine())
	if err := f.out.writeLine(errorLine(o.ID, codeInvalidRequest, o.Message(), map[string]any{"limit_bytes": maxLine()})); err != nil {
		f.log.Debug("shared: client write failed", "err", err)
	}
}

// upstreamTooLong answers the request whose response was over maxLine
// (the server bounds its results far below it, so this is a bug or a
// primary of another release), keeping the connection.
func (f *forwarder) upstreamTooLong(o oversized) {
	f.log.Warn("shared: skipped an oversized message from the primary", "bytes", o.N, "limit", maxLine())
	if len(o.ID) == 0 {
		return
	}
	key := idKey(o.ID)
	f.mu.Lock()
	_, pending := f.pending[key]
	delete(f.pending, key)
	if done, ok := f.swallow[key]; ok {
		delete(f.swallow, key)
		close(done)
		pending = false
	}
	f.mu.Unlock()
	if !pending {
		return
	}
	msg := fmt.Sprintf("the response was %d bytes, over the %d-byte limit of one message on this transport", o.N, o.Limit)
	if err := f.out.writeLine(errorLine(o.ID, codeInternal, msg, nil)); err != nil {
		f.log.Debug("shared: client write failed", "err", err)
	}
}

// attach connects to a primary (becoming it if there is none),
// re-initializes the session on it and resends the retryable requests the previous
// one left unanswered, answering the others with an error. old is nil at
// start-up.
func (f *forwarder) attach(ctx context.Context, old upstream) (upstream, chan struct{}, error) {
	for {
		var retry []*pendingReq
		if old != nil {
			old.Close()
			retry = f.settlePending()
			f.mu.Lock()
			f.takeovers++
			f.mu.Unlock()
		}
		up, err := f.connect(ctx)
		if err != nil {
			f.failAll(retry, err)
			return nil, nil, err
		}
		lost := make(chan struct{})
		go f.pump(up, lost)
		if old == nil {
			return up, lost, nil
		}
		if err := f.reinitialize(up, lost, retry); err != nil {
			f.log.Warn("shared: new primary lost while re-initializing; trying again", "err", err)
			up.Close()
			<-lost
			old = up
			continue
		}
		return up, lost, nil
	}
}

// settlePending answers every unanswered request that is not safe to
// send again, and returns the rest (oldest first), still pending.
func (f *forwarder) settlePending() []*pendingReq {
	f.mu.Lock()
	var all []*pendingReq
	for _, p := range f.pending {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	var retry, fail []*pendingReq
	for _, p := range all {
		f.log.Debug("shared: request unanswered by the lost primary", "method", p.env.Method, "id", store.Clip(string(p.env.ID)), "sends", p.sends, "retryable", f.policy.retryable(p.env))
		if p.sends == 0 || (p.sends < maxSends && f.policy.retryable(p.env)) {
			retry = append(retry, p)
			continue
		}
		delete(f.pending, idKey(p.env.ID))
		fail = append(fail, p)
	}
	// Set-up messages re-sent to a primary that died too are moot now.
	for k, ch := range f.swallow {
		delete(f.swallow, k)
		close(ch)
	}
	f.mu.Unlock()
	for _, p := range fail {
		f.answerLost(p, nil)
	}
	return retry
}

// failAll answers requests that can no longer be sent anywhere.
func (f *forwarder) failAll(ps []*pendingReq, cause error) {
	f.mu.Lock()
	for _, p := range ps {
		delete(f.pending, idKey(p.env.ID))
	}
	f.mu.Unlock()
	for _, p := range ps {
		f.answerLost(p, cause)
	}
}

func (f *forwarder) answerLost(p *pendingReq, cause error) {
	msg := "the nano-vm-mcp process serving this request exited before answering; it may have partly run. " +
		"Retry it: a run_program with an idempotency_key continues from its last durable step, and resume_program continues a run left \"running\"."
	data := map[string]any{"retryable": true}
	if cause != nil {
		msg = "the nano-vm-mcp process serving this request exited before answering, and no other could take over: " + cause.Error()
		data["retryable"] = false
	}
	if err := f.out.writeLine(errorLine(p.env.ID, codePrimaryLost, msg, data)); err != nil {
		f.log.Debug("shared: client write failed", "err", err)
	}
}

// reinitialize re-establishes the client's session on a new primary:
// initialize
// (answered to nobody), notifications/initialized and the log level, then
// the retryable requests under their own ids. A client on the stateless
// protocol (2026-07-28, server/discover) has no session to reinitialize; a ping
// stands in for initialize then. Either way the retries are written only
// after the new primary has answered, so none is spent on a connection
// that a dying listener accepted and will reset.
func (f *forwarder) reinitialize(up upstream, lost <-chan struct{}, retry []*pendingReq) error {
	f.mu.Lock()
	initLine, initialized, levelLine := f.initLine, f.initialized, f.levelLine
	f.mu.Unlock()
	probe := initLine
	if probe == nil {
		probe = []byte(`{"jsonrpc":"2.0","id":0,"method":"ping"}`)
	}
	done, line, err := f.swallowed(probe)
	if err != nil {
		return err
	}
	if err := writeLine(up, line); err != nil {
		return err
	}
	select {
	case <-done:
	case <-lost:
		return errors.New("re-initialize: connection closed before the new primary answered")
	case <-time.After(reinitTimeout):
		up.Close()
		return fmt.Errorf("re-initialize: no answer in %s", reinitTimeout)
	}
	if initLine != nil && initialized {
		if err := writeLine(up, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
			return err
		}
	}
	if initLine != nil && levelLine != nil {
		_, line, err := f.swallowed(levelLine)
		if err == nil {
			err = writeLine(up, line)
		}
		if err != nil {
			return err
		}
	}
	for _, p := range retry {
		if err := writeLine(up, p.line); err != nil {
			return err
		}
		f.sent(p)
	}
	return nil
}

// swallowed rewrites a request under a fresh id whose response the pump
// drops, and returns a channel closed when that response arrives.
func (f *forwarder) swallowed(line []byte) (chan struct{}, []byte, error) {
	f.mu.Lock()
	f.reinits++
	id := fmt.Sprintf("nano-vm-mcp/reinit-%d", f.reinits)
	done := make(chan struct{})
	raw, _ := json.Marshal(id)
	f.swallow[idKey(raw)] = done
	f.mu.Unlock()
	out, err := withID(line, id)
	return done, out, err
}
