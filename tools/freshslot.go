package tools

import (
	"context"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	wsys "github.com/tetratelabs/wazero/sys"
)

// freshSlot is what one fresh call of a tool reuses from an earlier one:
// the module config with its stdio streams, deterministic random source and
// clocks built in, the memory allocator and the context values that hand
// it and the import resolver to the runtime. Instantiating from a prebuilt
// config spares the clones every ModuleConfig.With* makes (a struct and a
// map each) and the per-instance clocks and random source the runtime
// would otherwise create.
//
// A slot serves one call at a time and holds nothing of a call once it
// ends: the instance is closed and its memory freed before the slot goes
// back (or, for a resettable tool, the instance is kept with the slot and
// reset before its next call: reset.go), the streams are detached, and the next call reseeds the random
// source and rewinds the clocks, so a call sees exactly what a new config
// would give it. Nothing in a slot is guest-writable but through those
// streams, clocks and source.
type freshSlot struct {
	cfg   wazero.ModuleConfig
	in    swapReader
	out   swapWriter
	err   swapWriter
	rand  *slotRand // nil when the tool holds wasi:random
	clock fakeClock
	mem   limitedMemory
	cur   *callState // the call in progress; nil between calls
	// vals carries the memory allocator and the import resolver; the
	// call's context answers their keys from it (callCtx.Value).
	vals context.Context
	// stack is the parameter and result stack of nanovm_call.
	stack [1]uint64
	// stop is the stop flag of the slot's instance of the moment.
	stop stopper
	// inst is the slot's live instance, kept between calls of a
	// resettable tool (reset.go); nil for any other.
	inst *kept
}

// randSeed is the seed of a tool's random source without wasi:random.
var randSeed = [32]byte{'n', 'a', 'n', 'o', 'v', 'm'}

// getSlot returns an idle slot of t, or a new one.
func (t *Tool) getSlot() *freshSlot {
	if s, ok := t.slots.Get().(*freshSlot); ok {
		return s
	}
	s := &freshSlot{}
	s.mem.host = t.host
	s.mem.keep = true
	s.mem.onHit = func(err error) {
		if st := s.cur; st != nil {
			st.fail(err)
		}
	}
	s.vals = experimental.WithImportResolver(
		experimental.WithMemoryAllocator(context.Background(), experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return &s.mem })),
		t.link.resolver)
	cfg := t.base.WithStdin(&s.in).WithStdout(&s.out).WithStderr(&s.err)
	if !t.caps[CapRandom] {
		s.rand = &slotRand{c: mrand.NewChaCha8(randSeed)}
		cfg = cfg.WithRandSource(s.rand)
	}
	if !t.caps[CapClock] {
		cfg = cfg.WithWalltime(s.clock.walltime, fakeWalltimeResolution).WithNanotime(s.clock.nanotime, fakeNanotimeResolution)
	}
	s.cfg = cfg
	return s
}

// arm readies s for the call st with stdin as its input.
func (s *freshSlot) arm(st *callState, stdin []byte) {
	s.cur = st
	s.in.set(stdin)
	s.out.w, s.err.w = &st.stdout, &st.stderr
	if s.rand != nil {
		s.rand.rewind()
	}
	s.clock.reset()
	s.mem.limit = st.memLimit
	s.mem.held = st.tool.lim.memory - st.memLimit
	s.mem.peak = 0
}

// disarm detaches s from its call once the instance is closed and its
// memory freed.
func (s *freshSlot) disarm() {
	s.cur = nil
	s.in.clear()
	s.out.w, s.err.w = nil, nil
}

// putSlot keeps s for the next call, unless the host is closing (its
// runtime may then free the memory from another goroutine).
func (t *Tool) putSlot(s *freshSlot) {
	if t.host.closing.Load() || s.inst != nil || s.mem.buf != nil || s.mem.region != nil || s.mem.charged != 0 {
		return
	}
	t.slots.Put(s)
}

// slotRand is a slot's deterministic random source. Rewinding it to the
// seed costs a ChaCha8 block, so it is done only when a call read from it:
// one that did not left it at the seed.
type slotRand struct {
	c    *mrand.ChaCha8
	read bool
}

func (r *slotRand) Read(p []byte) (int, error) {
	r.read = true
	return r.c.Read(p)
}

func (r *slotRand) rewind() {
	if r.read {
		r.c.Seed(randSeed)
		r.read = false
	}
}

// fakeClock is the clock of a tool without wasi:clock, as wazero's default
// fake one: the wall clock reads midnight UTC 2022-01-01 first, the
// monotonic clock 0, and each reading advances by 1 ms.
type fakeClock struct {
	wall, nano atomic.Int64
}

const (
	fakeEpochNanos         = 1640995200000 * int64(time.Millisecond)
	fakeWalltimeResolution = wsys.ClockResolution(time.Microsecond)
	fakeNanotimeResolution = wsys.ClockResolution(time.Nanosecond)
)

func (c *fakeClock) reset() {
	c.wall.Store(fakeEpochNanos - int64(time.Millisecond))
	c.nano.Store(-int64(time.Millisecond))
}

func (c *fakeClock) walltime() (int64, int32) {
	t := c.wall.Add(int64(time.Millisecond))
	return t / 1e9, int32(t % 1e9)
}

func (c *fakeClock) nanotime() int64 { return c.nano.Add(int64(time.Millisecond)) }
