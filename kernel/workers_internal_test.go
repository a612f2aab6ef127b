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

// deep uses about n KiB of stack, as a sandboxed call does.
//
//go:noinline
func deep(n int) byte {
	var pad [1000]byte
	if n == 0 {
		return pad[0]
	}
	pad[n%len(pad)] = byte(n)
	return deep(n-1) + pad[(n*7)%len(pad)]
}

var sink byte

// BenchmarkSubStepStart is what starting a sub-step that needs a deep
// stack (64 KiB) costs, on a kept worker against a new goroutine.
func BenchmarkSubStepStart(b *testing.B) {
	for _, bc := range []struct {
		name  string
		start func(func())
	}{{"goSub", goSub}, {"go", func(f func()) { go f() }}} {
		b.Run(bc.name, func(b *testing.B) {
			var wg sync.WaitGroup
			for b.Loop() {
				wg.Add(2)
				for range 2 {
					bc.start(func() { sink += deep(64); wg.Done() })
				}
				wg.Wait()
			}
		})
	}
}

// Ensure a sub-step that ends its goroutine (runtime.Goexit) gives its
// worker's place back: the pool does not fill with workers that are gone.
func TestGoSubGoexitFreesWorker(t *testing.T) {
	before := subWorkers.Load()
	var wg sync.WaitGroup
	wg.Add(1)
	// A new worker, started as goSub starts one when none waits (a
	// waiting one would be handed the sub-step instead).
	subWorkers.Add(1)
	go subWorker(func() { defer wg.Done(); runtime.Goexit() })
	wg.Wait()
	for try := 0; subWorkers.Load() != before; try++ {
		if try == 100 {
			t.Fatalf("workers counted %d after a Goexit, want %d", subWorkers.Load(), before)
		}
		time.Sleep(time.Millisecond)
	}
}
