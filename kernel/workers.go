package kernel

import "sync/atomic"

// Parallel sub-steps run on goroutines kept between steps. A goroutine
// starts on a small stack and a sandboxed tool call grows it, copying it
// several times (a few µs per refund program); a worker that ran a
// sub-step keeps its grown stack for the next one. (.rationale/kernel.md,
// "Why do parallel sub-steps run on kept goroutines?")

// subWork hands a sub-step to a waiting worker. Unbuffered: a send
// succeeds only when a worker is already waiting, and otherwise goSub
// starts a goroutine, so no sub-step waits behind another.
var subWork = make(chan func())

// subWorkers counts the workers; at most maxSubWorkers are kept, and a
// sub-step that finds none waiting beyond them gets a goroutine of its
// own, as before.
var subWorkers atomic.Int32

const maxSubWorkers = 256

// goSub runs f on a goroutine of its own: a waiting worker's, else a new
// one's (which then stays as a worker, up to maxSubWorkers).
func goSub(f func()) {
	select {
	case subWork <- f:
		return
	default:
	}
	if subWorkers.Add(1) <= maxSubWorkers {
		go subWorker(f)
		return
	}
	subWorkers.Add(-1)
	go f()
}

// subWorker runs f, then every sub-step handed to it. It waits on a
// plain receive: a select with an idle timer cost about as much as the
// stack growth saved.
func subWorker(f func()) {
	// A sub-step that ends its goroutine (runtime.Goexit, as a test's
	// FailNow in a tool executor does) ends the worker: it no longer
	// counts.
	defer subWorkers.Add(-1)
	for {
		f()
		f = nil // nothing of a finished sub-step stays reachable
		f = <-subWork
	}
}
