package main

import (
	"context"
	"log/slog"
	"strings"
)

// noPolicyWarning starts the runtime's warning that no policy file is
// set, policyWarning each of its warnings about the policy file
// (runtime.Open logs them at every open).
const (
	noPolicyWarning = "no policy file"
	policyWarning   = "policy: "
)

// logger is the command's logger: text on stderr at --log-level. Outside
// serve the time is left out (a person reads it). The no-policy warning
// is printed at most once per process, and only by the commands that run
// tools (serve, run, resume): it is about what tools may do when they
// run, and an administrative command that repeats it on every call
// teaches its reader to skip warnings. The policy file's own warnings
// follow the same rule, each once.
func (c *common) logger() *slog.Logger {
	if c.log != nil {
		return c.log
	}
	opts := &slog.HandlerOptions{Level: c.level}
	serve := c.cmd != nil && c.cmd.name == "serve"
	if !serve {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	h := &cliHandler{Handler: slog.NewTextHandler(c.cio.stderr, opts), cio: c.cio, quiet: c.cmd == nil || !c.cmd.runsTools}
	c.log = slog.New(h)
	return c.log
}

// cliHandler drops the no-policy warning where it does not belong; see
// common.logger.
type cliHandler struct {
	slog.Handler
	cio   *cliIO
	quiet bool
}

func (h *cliHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && (strings.HasPrefix(r.Message, noPolicyWarning) || strings.HasPrefix(r.Message, policyWarning)) {
		if h.quiet || !h.cio.once(r.Message) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *cliHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &cliHandler{Handler: h.Handler.WithAttrs(as), cio: h.cio, quiet: h.quiet}
}

func (h *cliHandler) WithGroup(name string) slog.Handler {
	return &cliHandler{Handler: h.Handler.WithGroup(name), cio: h.cio, quiet: h.quiet}
}
