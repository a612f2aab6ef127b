package kernel

import "time"

// Parallel sub-steps run on goroutines kept between steps. A goroutine
// starts on a small stack and a sandboxed tool call grows it, copying it
// several times (about 4 µs per refund program, a tenth of the kernel's
// own CPU); a worker that ran a sub-step keeps its grown stack for the
// next one. A worker waits subWorkerIdle for more work, then exits, so
// the pool is as large as the sub-steps recently running at once.
// (.rationale/kernel.md, "Why do parallel sub-steps run on kept
// goroutines?")

// subWork hands a sub-step to a waiting worker. Unbuffered: a send
// succeeds only when a worker is already waiting, and otherwise goSub
// starts one, so no sub-step waits behind another.
var subWork = make(chan func())

// subWorkerIdle is how long a worker waits for another sub-step.
const subWorkerIdle = 2 * time.Second

// goSub runs f on a goroutine of its own: a waiting worker's, else a new
// one's (which then stays as a worker).
func goSub(f func()) {
	select {
	case subWork <- f:
	default:
		go subWorker(f)
	}
}

func subWorker(f func()) {
	t := time.NewTimer(subWorkerIdle)
	defer t.Stop()
	for {
		f()
		f = nil // nothing of a finished sub-step stays reachable
		t.Reset(subWorkerIdle)
		select {
		case f = <-subWork:
		case <-t.C:
			return
		}
	}
}
