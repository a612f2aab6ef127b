package mcpserver

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// maxNotificationWait bounds how long a run's answer waits for its
// notifications to be written, and how long one notification waits for
// room in a full session queue: a client that stops reading gets its
// answer late, never a run stalled for good.
const maxNotificationWait = time.Second

// barrierText is the text of errNotificationBarrier; filterBarrier drops
// the log lines mcp-go writes when a barrier fails to encode.
const barrierText = "nano-vm-mcp notification barrier (never sent)"

// errNotificationBarrier is what a barrier's MarshalJSON returns, so that
// every transport drops the barrier instead of writing it.
var errNotificationBarrier = errors.New(barrierText)

// barrier is a notification parameter that tells when a transport's
// notification forwarder reached it. mcp-go forwards a session's
// notifications from one goroutine, in queue order, and encodes each one
// only after it has written (stdio, Streamable HTTP) or queued ahead of
// any response (SSE) the one before: a barrier queued behind a run's last
// notification is encoded only once that notification is on its way,
// ahead of the answer. Encoding fails on purpose, so nothing reaches the
// client.
type barrier struct {
	once    sync.Once
	reached chan struct{}
}

func (b *barrier) MarshalJSON() ([]byte, error) {
	b.once.Do(func() { close(b.reached) })
	return nil, errNotificationBarrier
}

// notificationEncoder is a session that says whether its notifications
// are encoded, in queue order, before they are written: internal/primary's
// sessions are mcp-go in-process sessions that do (a barrier works), while
// mcp-go's own in-process client takes them as they are (it would not).
type notificationEncoder interface{ EncodesNotifications() bool }

// progressSink reports a run's durable steps to the client that asked for
// them, and makes sure they are written before the run's answer.
type progressSink struct {
	s     *Server
	ctx   context.Context
	token mcp.ProgressToken
	// sent is set once a notification was queued for this request.
	sent atomic.Bool
}

// progressFunc reports each durable step: as notifications/progress when
// the client asked for progress (sent a progress token), and as a log
// message (notifications/message, level info, logger "nano-vm-mcp.run")
// when the client's logging level lets info through. The returned flush
// must run before the answer is given (defer it): it waits until every
// notification queued is written ahead of it.
func (s *Server) progressFunc(ctx context.Context, req mcp.CallToolRequest) (report func(runtime.Progress), flush func()) {
	ps := &progressSink{s: s, ctx: ctx}
	if req.Params.Meta != nil {
		ps.token = req.Params.Meta.ProgressToken
	}
	return ps.report, ps.flush
}

func (ps *progressSink) report(p runtime.Progress) {
	srv := ps.s.mcp
	if ps.token != nil {
		msg := "step " + p.StepID + ": " + string(p.Status)
		params := map[string]any{"progressToken": ps.token, "progress": p.Done, "message": msg}
		// Total is a hint (branches skip steps, loops repeat them); it
		// must never be below progress.
		if p.Total >= p.Done {
			params["total"] = p.Total
		}
		err := ps.queue(func() error {
			return srv.SendNotificationToClient(ps.ctx, string(mcp.MethodNotificationProgress), params)
		})
		if err != nil {
			ps.s.log.Debug("progress notification not sent", "trace", p.TraceID, "err", err)
		}
	}
	if ps.wantsInfoLog() {
		note := mcp.NewLoggingMessageNotification(mcp.LoggingLevelInfo, "nano-vm-mcp.run",
			map[string]any{"trace_id": p.TraceID, "index": p.Index, "step_id": p.StepID, "status": p.Status})
		_ = ps.queue(func() error { return srv.SendLogMessageToClient(ps.ctx, note) })
	}
	if ps.s.afterProgress != nil {
		ps.s.afterProgress(p)
	}
}

// queue runs send, which queues one notification, and retries while the
// session's queue is full (mcp-go drops a notification then), for at most
// maxNotificationWait.
func (ps *progressSink) queue(send func() error) error {
	deadline := time.Now().Add(maxNotificationWait)
	for wait := 50 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
		err := send()
		if err == nil {
			ps.sent.Store(true)
			return nil
		}
		if !errors.Is(err, server.ErrNotificationChannelBlocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ps.ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// wantsInfoLog reports whether this request's client takes info log
// messages: per request in the 2026-07-28 protocol, per session before
// (mcp-go's own rule in SendLogMessageToClient, so that a message it would
// filter out does not count as sent).
func (ps *progressSink) wantsInfoLog() bool {
	if info := server.RequestProtocolInfoFromContext(ps.ctx); info != nil && info.Modern {
		return info.LogLevel != "" && mcp.LoggingLevelInfo.ShouldSendTo(info.LogLevel)
	}
	session := server.ClientSessionFromContext(ps.ctx)
	sl, ok := session.(server.SessionWithLogging)
	return ok && mcp.LoggingLevelInfo.ShouldSendTo(sl.GetLogLevel())
}

// flush waits until every notification this request queued has been
// written ahead of the answer: it queues a barrier behind them and waits,
// at most maxNotificationWait, until the session's forwarder reaches it.
// Without this the answer could overtake the last notifications, on every
// transport: mcp-go writes notifications from a goroutine of their own,
// and the response from the request's (a client has stopped listening for
// a request's progress once it has the answer; on Streamable HTTP mcp-go
// v1.2.1 even drops one, mark3labs/mcp-go#969). See .rationale/mcp.md
// "Why does a run's answer wait behind a barrier notification?".
func (ps *progressSink) flush() {
	if !ps.sent.Load() {
		return
	}
	session := server.ClientSessionFromContext(ps.ctx)
	if session == nil {
		return
	}
	switch sess := session.(type) {
	case notificationEncoder:
		if !sess.EncodesNotifications() {
			return
		}
	case *server.InProcessSession:
		// mcp-go's in-process client takes notifications unencoded: a
		// barrier would reach it, and never signal.
		return
	}
	b := &barrier{reached: make(chan struct{})}
	note := mcp.JSONRPCNotification{
		JSONRPC: mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{
			Method: "notifications/nano-vm-mcp/barrier",
			Params: mcp.NotificationParams{AdditionalFields: map[string]any{"barrier": b}},
		},
	}
	timer := time.NewTimer(maxNotificationWait)
	defer timer.Stop()
	select {
	case session.NotificationChannel() <- note:
	case <-ps.ctx.Done():
		return
	case <-timer.C:
		return
	}
	select {
	case <-b.reached:
	case <-ps.ctx.Done():
	case <-timer.C:
	}
}

// filterBarrier is a log handler that drops the lines mcp-go logs when a
// barrier fails to encode, as it is meant to.
type filterBarrier struct{ slog.Handler }

func (f filterBarrier) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, barrierText) {
		return nil
	}
	drop := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, errNotificationBarrier) {
			drop = true
			return false
		}
		if strings.Contains(a.Value.String(), barrierText) {
			drop = true
			return false
		}
		return true
	})
	if drop {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f filterBarrier) WithAttrs(attrs []slog.Attr) slog.Handler {
	return filterBarrier{f.Handler.WithAttrs(attrs)}
}

func (f filterBarrier) WithGroup(name string) slog.Handler {
	return filterBarrier{f.Handler.WithGroup(name)}
}
