package tools

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineCtx is a call's timeout context: the caller's context with the
// call's deadline and a cancel of its own, as context.WithTimeout makes,
// but reused call after call as long as it never fired. WithTimeout costs
// a context, a timer and a channel per call, and a timer heap insertion;
// this costs a timer Reset, and nothing at all for a parent that cannot be
// cancelled; one that can is watched by the one parentWatch its running
// calls share.
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

	// Set per call, before the call starts; read during it.
	parent   context.Context
	deadline time.Time
	// par is the watch of parent's end this context is linked into
	// (watchesMu guards the link and parHit); nil when parent cannot end.
	par              *parentWatch
	parPrev, parNext *deadlineCtx
	// parHit is set when par fired with this context linked: its cancel
	// may still be on its way, so the context is not reused.
	parHit bool

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
	}
	d.parent = parent
	d.deadline = time.Now().Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d.deadline) {
		d.deadline = pd
	}
	if done := parent.Done(); done != nil {
		watchParent(d, parent, done)
		if err := parent.Err(); err != nil {
			// Ended already: end now, as WithTimeout would, rather than
			// when the watch's goroutine gets to it. (A watch that fired
			// before d was linked finds parent.Err set here.)
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
	if d.par != nil && !unwatchParent(d) {
		reusable = false
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

// parentWatch is the one watch (context.AfterFunc) of a cancellable parent
// context that every call running under it shares: calls under one
// parent, such as the server's or a runner's, each cost a link into a
// list instead of a registration in the parent (an allocation, and
// the parent's lock taken twice). When the parent ends, fire cancels
// every linked call's context, which sets its instance's stop flag.
//
// A watch outlives its last call as one of at most maxIdleWatches idle
// ones, so that a parent serving call after call (at most one per core
// is running at a time) keeps its one watch rather than registering
// anew per call; the oldest idle watch is stopped when a newer one
// would pass the bound. An idle watch keeps its parent reachable until
// then, or until the parent ends.
type parentWatch struct {
	done  <-chan struct{}
	stop  func() bool // stops the AfterFunc
	head  *deadlineCtx
	n     int
	fired bool
}

var (
	watchesMu sync.Mutex
	// watches are the live watches by their parent's Done channel: two
	// contexts with one channel (a WithValue over a cancelCtx) end
	// together.
	watches = map[<-chan struct{}]*parentWatch{}
	// idleWatches are the watches without calls, oldest first.
	idleWatches []*parentWatch
)

// maxIdleWatches bounds the idle watches kept for their parent's next
// call.
const maxIdleWatches = 16

// dropIdle removes w from idleWatches, if there.
func dropIdle(w *parentWatch) {
	for i, x := range idleWatches {
		if x == w {
			idleWatches = slices.Delete(idleWatches, i, i+1) // zeroes the tail
			return
		}
	}
}

// watchParent links d into the watch of parent's end, making one when
// there is none.
func watchParent(d *deadlineCtx, parent context.Context, done <-chan struct{}) {
	watchesMu.Lock()
	w := watches[done]
	if w == nil {
		w = &parentWatch{done: done}
		watches[done] = w
		// AfterFunc never runs fire before it returns (it starts a
		// goroutine), so registering under the lock cannot deadlock.
		w.stop = context.AfterFunc(parent, w.fire)
	} else if w.n == 0 {
		dropIdle(w)
	}
	d.par, d.parHit = w, false
	d.parPrev, d.parNext = nil, w.head
	if w.head != nil {
		w.head.parPrev = d
	}
	w.head = d
	w.n++
	watchesMu.Unlock()
}

// unwatchParent unlinks d from its watch, making the watch idle when d
// was the last call on it (and stopping the oldest idle one past
// maxIdleWatches), and reports false when the watch fired with d linked
// (d's cancel may still be on its way: d is not to be reused).
func unwatchParent(d *deadlineCtx) bool {
	watchesMu.Lock()
	w, hit := d.par, d.parHit
	if d.parPrev != nil {
		d.parPrev.parNext = d.parNext
	} else if w.head == d {
		w.head = d.parNext
	}
	if d.parNext != nil {
		d.parNext.parPrev = d.parPrev
	}
	d.par, d.parPrev, d.parNext, d.parHit = nil, nil, nil, false
	w.n--
	var stop func() bool
	if w.n == 0 && !w.fired {
		idleWatches = append(idleWatches, w)
		if len(idleWatches) > maxIdleWatches {
			old := idleWatches[0]
			dropIdle(old)
			delete(watches, old.done)
			stop = old.stop
		}
	}
	watchesMu.Unlock()
	if stop != nil {
		// If its parent ended meanwhile, fire still runs and finds no
		// call linked.
		stop()
	}
	return !hit
}

// fire cancels every call linked to w, its parent having ended. The
// calls are marked under the lock and cancelled outside it: a cancel
// takes the call's and its stopper's locks.
func (w *parentWatch) fire() {
	watchesMu.Lock()
	w.fired = true
	if watches[w.done] == w {
		delete(watches, w.done)
	}
	if w.n == 0 {
		dropIdle(w)
	}
	var hit []*deadlineCtx
	for d := w.head; d != nil; d = d.parNext {
		d.parHit = true
		hit = append(hit, d)
	}
	watchesMu.Unlock()
	for _, d := range hit {
		// d stays unreused (parHit), so its parent is still its call's.
		err := d.parent.Err()
		if err == nil {
			err = context.Canceled // a parent whose Done closed without an Err
		}
		d.cancel(err)
	}
}
