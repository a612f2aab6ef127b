package tools

import (
	"context"
	"sync"
)

// sessionKey is the context key of the MCP session a call is made for.
type sessionKey struct{}

// WithSession returns ctx marking the calls made under it as made for the
// MCP session id: the session's calls in flight together are bounded by
// Ceilings.CallsInFlightPerSession, so one session cannot hold every one
// of the server's. The gateway sets it for sessions the server issued;
// an empty id leaves ctx as it is.
func WithSession(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, id)
}

// sessionOf returns the session WithSession put in ctx, or "".
func sessionOf(ctx context.Context) string {
	id, _ := ctx.Value(sessionKey{}).(string)
	return id
}

// sessionShares holds, per session with a call waiting or in flight, the
// tokens of its share of the calls in flight. An entry lives while a call
// refers to it, so the map holds at most one entry per call waiting or
// running.
type sessionShares struct {
	per int
	mu  sync.Mutex
	m   map[string]*sessionShare
}

type sessionShare struct {
	id     string
	tokens chan struct{}
	refs   int
}

// acquire returns id's share, referenced once more.
func (s *sessionShares) acquire(id string) *sessionShare {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.m[id]
	if sh == nil {
		if s.m == nil {
			s.m = map[string]*sessionShare{}
		}
		sh = &sessionShare{id: id, tokens: make(chan struct{}, s.per)}
		s.m[id] = sh
	}
	sh.refs++
	return sh
}

// release drops one reference to sh, forgetting it at the last.
func (s *sessionShares) release(sh *sessionShare) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.refs--; sh.refs == 0 {
		delete(s.m, sh.id)
	}
}
