package tools

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineCtx is a call's timeout context: the caller's context with the
// call's deadline and a cancel of its own, as context.WithTimeout makes,
// but reused call after call as long as it never fired. WithTimeout costs
// a context, a timer and a channel per call, and a timer heap insertion;
// this costs a timer Reset, and nothing at all for a parent that cannot be
// cancelled (context.AfterFunc watches one that can).
//
// Its done channel is fixed for the context's life and closed at most
// once: a context whose channel closed (the call timed out, failed or was
// cancelled) is never reused, nor is one whose timer or parent watch
// could not be stopped before it ran. So whoever still holds one from an
// earlier call sees a channel that closes only for a later call's
// timeout, and then finds its own call over and does nothing; a stop flag
// it sets names its call's generation (stopper).
type deadlineCtx struct {
	done chan struct{}
	// timer fires expire at the deadline; created on first use, then
	// Reset per call.
	timer  *time.Timer
	expire func()
	onPar  func() // cancels on the parent's end (context.AfterFunc)

	// Set per call, before the call starts; read during it.
	parent   context.Context
	deadline time.Time
	stopPar  func() bool // stops the parent watch; nil when none

	mu  sync.Mutex
	err error
	// stop, when set, is the stop flag of the instance running the call
	// (armed as generation stopGen): cancel sets it.
	stop    *stopper
	stopGen uint64
}

var deadlinePool sync.Pool // *deadlineCtx, reusable

// newDeadline returns a context that ends when parent does or after
// timeout, whichever comes first, and the context's cancel. Release it
// with releaseDeadline once the call is over.
func newDeadline(parent context.Context, timeout time.Duration) *deadlineCtx {
	d, _ := deadlinePool.Get().(*deadlineCtx)
	if d == nil {
		d = &deadlineCtx{done: make(chan struct{})}
		d.expire = func() { d.cancel(context.DeadlineExceeded) }
		d.onPar = func() { d.cancel(d.parent.Err()) }
	}
	d.parent = parent
	d.deadline = time.Now().Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d.deadline) {
		d.deadline = pd
	}
	if parent.Done() != nil {
		d.stopPar = context.AfterFunc(parent, d.onPar)
		if err := parent.Err(); err != nil {
			// Ended already: end now, as WithTimeout would, rather than
			// when AfterFunc's goroutine gets to it.
			d.cancel(err)
		}
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(timeout, d.expire)
	} else {
		d.timer.Reset(timeout)
	}
	return d
}

// cancel ends the context with err, once.
func (d *deadlineCtx) cancel(err error) {
	d.mu.Lock()
	var s *stopper
	var gen uint64
	if d.err == nil {
		d.err = err
		close(d.done)
		s, gen = d.stop, d.stopGen
	}
	d.mu.Unlock()
	if s != nil {
		if late := lateStop.Load(); late != nil {
			(*late)()
		}
		s.stop(gen)
	}
}

// lateStop, set by tests only, runs between a cancel's end and its setting
// of the stop flag: a late stop, which must find its call over. It is
// atomic because a test's late timers may still be running when the test
// ends and clears it.
var lateStop atomic.Pointer[func()]

// watch makes s, armed as generation gen, the stop flag cancel sets (nil:
// none), and reports whether the context ended already.
func (d *deadlineCtx) watch(s *stopper, gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stop, d.stopGen = s, gen
	return d.err != nil
}

// release stops the timer and the parent watch; the context goes back to
// deadlinePool only when neither ran nor can run, and it never ended.
func releaseDeadline(d *deadlineCtx) {
	reusable := d.timer.Stop()
	if d.stopPar != nil {
		if !d.stopPar() {
			reusable = false
		}
		d.stopPar = nil
	}
	d.mu.Lock()
	if d.err != nil {
		reusable = false
	}
	d.stop = nil
	d.mu.Unlock()
	if reusable {
		d.parent = context.Background() // not the caller's, kept alive
		deadlinePool.Put(d)
	}
}

func (d *deadlineCtx) Deadline() (time.Time, bool) { return d.deadline, true }
func (d *deadlineCtx) Done() <-chan struct{}       { return d.done }

func (d *deadlineCtx) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Value is the parent's. (context.Cause still reports this context's own
// end under a live cancellable parent: it falls back to Err when the
// parent's cancelCtx holds no cause.)
func (d *deadlineCtx) Value(key any) any { return d.parent.Value(key) }
