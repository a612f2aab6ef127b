// Package kerneltest holds deterministic stand-ins for the kernel's
// interfaces: a manual clock, sequential ids, and scripted tools and models.
// Tests of every layer use them to run programs without sleeping and without
// randomness.
package kerneltest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Epoch is the time a ManualClock starts at.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ManualClock is a kernel.Clock that moves only when told to. Sleep returns
// at once and advances the clock by the duration asked, recording it;
// contexts from WithTimeout expire when the clock is advanced past their
// deadline.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	timers []*manualCtx
}

// NewManualClock returns a clock at Epoch.
func NewManualClock() *ManualClock { return &ManualClock{now: Epoch} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d and advances the clock by it, without waiting.
func (c *ManualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	c.Advance(d)
	return ctx.Err()
}

// Sleeps returns the durations Sleep was asked for, in order.
func (c *ManualClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Advance moves the clock forward, expiring contexts whose deadline passed.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualCtx
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !c.now.Before(t.deadline) {
			due = append(due, t)
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, t := range due {
		t.cancel(context.DeadlineExceeded)
	}
}

// WithTimeout returns a context that expires when the clock reaches now+d.
func (c *ManualClock) WithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c.mu.Lock()
	t := &manualCtx{Context: parent, deadline: c.now.Add(d), done: make(chan struct{})}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	stop := context.AfterFunc(parent, func() { t.cancel(parent.Err()) })
	return t, func() {
		stop()
		t.cancel(context.Canceled)
		c.mu.Lock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
}

type manualCtx struct {
	context.Context
	deadline time.Time
	once     sync.Once
	done     chan struct{}
	mu       sync.Mutex
	err      error
}

func (t *manualCtx) cancel(err error) {
	t.once.Do(func() {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		close(t.done)
	})
}

func (t *manualCtx) Deadline() (time.Time, bool) { return t.deadline, true }
func (t *manualCtx) Done() <-chan struct{}       { return t.done }
func (t *manualCtx) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// SeqIDs makes ids "trace-1", "trace-2", … in order.
type SeqIDs struct {
	mu sync.Mutex
	n  int
}

// NewID returns the next id.
func (s *SeqIDs) NewID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return fmt.Sprintf("trace-%d", s.n)
}
