package kernel

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// goroutineID returns the calling goroutine's id, from its stack header.
func goroutineID() int {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	id, err := strconv.Atoi(string(s[:bytes.IndexByte(s, ' ')]))
	if err != nil {
		panic(err)
	}
	return id
}

// Ensure a sub-step started after another finished runs on a kept
// goroutine (with its grown stack), not on a new one: goroutine ids only
// grow, so one made after the first sub-step marks where new ones start.
func TestGoSubReusesWorker(t *testing.T) {
	ids := make(chan int, 1)
	goSub(func() { ids <- goroutineID() })
	<-ids
	go func() { ids <- goroutineID() }()
	mark := <-ids
	// The worker is between its sub-step and its wait: give it time to
	// reach the wait (a new worker would be started otherwise, correctly,
	// so retry a few times rather than fail on a slow scheduler).
	for try := 0; try < 50; try++ {
		time.Sleep(time.Millisecond)
		goSub(func() { ids <- goroutineID() })
		if <-ids < mark {
			return
		}
	}
	t.Fatal("every later sub-step ran on a new goroutine")
}

// Ensure sub-steps started at once all run at once: none waits behind
// another for a worker.
func TestGoSubRunsAllAtOnce(t *testing.T) {
	const n = 64
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		goSub(func() {
			started.Done()
			release.Wait()
			done.Done()
		})
	}
	ok := make(chan struct{})
	go func() { started.Wait(); close(ok) }()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatal("sub-steps started together did not all run together")
	}
	release.Done()
	done.Wait()
}
