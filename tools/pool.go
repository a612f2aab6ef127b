package tools

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// pool keeps warm instances of one tool version. An instance serves one
// call at a time; one that failed in any way is closed, never reused.
//
// What persists between calls on an instance: its linear memory (globals,
// heap, statics), its deterministic clock and random streams (which keep
// advancing) and open file descriptors. Stdin, stdout, stderr and the
// call's secrets and limits are per call. An instance that resolved a
// secret is closed after that call, so no later call can read it.
type pool struct {
	tool *Tool
	sem  chan struct{} // one token per live instance
	mu   sync.Mutex
	idle []*warm
}

// warm is one pooled instance and the per-call hooks its host side reads.
type warm struct {
	mod  api.Module
	call api.Function // nanovm_call for the call in progress; nil while idle
	in   swapReader
	out  swapWriter
	err  swapWriter
	mem  *limitedMemory
	cur  *callState
	// tables is the budget this instance's tables hold until it closes;
	// its memory's charge lives in mem, held while the instance idles.
	tables uint64
	host   *Host
	// stack is nanovm_call's parameter and result stack.
	stack [1]uint64
	// stop is the instance's stop flag.
	stop stopper
}

// close closes the instance (freeing its memory and the memory's charge)
// and releases its tables' charge.
func (w *warm) close() {
	_ = w.mod.Close(context.Background())
	w.mem.Free() // a no-op unless Close left it
	w.host.budget.release(w.tables)
	w.tables = 0
}

// swapReader is the instance's stdin: the current call's arguments, reset
// in place per call so a warm call allocates no reader.
type swapReader struct {
	r  bytes.Reader
	on bool
}

func (s *swapReader) Read(p []byte) (int, error) {
	if !s.on {
		return 0, io.EOF
	}
	return s.r.Read(p)
}

func (s *swapReader) set(b []byte) { s.r.Reset(b); s.on = true }

func (s *swapReader) clear() { s.r.Reset(nil); s.on = false }

type swapWriter struct{ w io.Writer }

func (s *swapWriter) Write(p []byte) (int, error) {
	if s.w == nil {
		return len(p), nil // between calls: nothing listens
	}
	return s.w.Write(p)
}

func newPool(t *Tool, size int) *pool {
	p := &pool{tool: t, sem: make(chan struct{}, size)}
	h := t.host
	h.poolsMu.Lock()
	h.pools = append(h.pools, p)
	h.poolsMu.Unlock()
	return p
}

// takeIdle pops an idle instance, or returns nil.
func (p *pool) takeIdle() *warm {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	w := p.idle[n-1]
	p.idle = p.idle[:n-1]
	return w
}

func (p *pool) call(ctx context.Context, st *callState, stdin []byte) (err error) {
	select {
	case p.sem <- struct{}{}:
	default:
		// Every instance is busy: wait for one (admission by pool size).
		p.tool.host.stats.poolWaits.Add(1)
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-p.sem }()
	// The server's calls in flight are taken after the pool's slot: a call
	// waiting for a busy pool holds none of them.
	share, err := p.tool.host.enterCall(ctx)
	if err != nil {
		st.fail(err)
		return st.failed()
	}
	defer p.tool.host.leaveCall(share)
	w, fresh, err := p.get(ctx, st)
	if err != nil {
		return err
	}
	if !fresh { // a new instance was armed before its _initialize
		st.armStop(&w.stop)
	}
	w.cur = st
	w.in.set(stdin)
	w.out.w, w.err.w = &st.stdout, &st.stderr
	ok := false
	if w.call == nil {
		w.call = w.mod.ExportedFunction("nanovm_call")
	}
	defer func() {
		// The function holds the runtime's call stack, which a deep call
		// grew outside linear memory and every budget: an idle instance
		// keeps no grown one, the next call starts afresh (10 KiB).
		if n, ok := stackBytes(w.call); !ok || n > maxIdleStack {
			w.call = nil
		}
		st.memBytes = w.mem.peak
		w.cur, w.out.w, w.err.w = nil, nil, nil
		w.in.clear()
		if ok {
			// No stop of this call reaches the instance once it is idle.
			st.disarmStop()
			p.mu.Lock()
			p.idle = append(p.idle, w)
			p.mu.Unlock()
		} else {
			w.close() // before the disarm: a closing host waits for it
			st.disarmStop()
		}
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: host panic: %v", ErrTrap, r)
		}
	}()
	if err := w.call.CallWithStack(ctx, w.stack[:]); err != nil {
		return err
	}
	if code := uint32(w.stack[0]); code != 0 {
		return sys.NewExitError(code)
	}
	// An instance that held a secret keeps it in its memory, where the
	// next call's scrubber would not know it: it serves no other call.
	ok = st.failed() == nil && !st.heldSecret()
	return nil
}

// get pops an idle instance or instantiates one under the current call, so
// limits breached in _initialize count against it.
func (p *pool) get(ctx context.Context, st *callState) (*warm, bool, error) {
	if w := p.takeIdle(); w != nil {
		p.tool.host.stats.poolHits.Add(1)
		return w, false, nil
	}

	t := p.tool
	w := &warm{cur: st, host: t.host}
	if tb := t.mod.tableBytes; tb > 0 {
		if !t.host.reserve(tb) {
			st.fail(t.host.budget.err(tb))
			return nil, false, st.failed()
		}
		w.tables = tb
	}
	w.mem = &limitedMemory{limit: st.memLimit, held: t.lim.memory - st.memLimit, host: t.host, onHit: func(err error) {
		if w.cur != nil {
			w.cur.fail(err)
		}
	}}
	// The call's context bounds _initialize; the instance outlives it, as
	// the runtime only watches a context while a function runs.
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory { return w.mem }))
	ctx = experimental.WithImportResolver(ctx, t.link.resolver)
	w.out.w, w.err.w = &st.stdout, &st.stderr
	cfg := t.base.WithStdin(&w.in).WithStdout(&w.out).WithStderr(&w.err)
	if !t.caps[CapRandom] {
		cfg = cfg.WithRandSource(deterministicRand())
	}
	var starts []string
	if t.mod.hasInit {
		starts = []string{"_initialize"}
	}
	t.host.stats.instantiations.Add(1)
	mod, err := t.instantiate(ctx, st, &w.stop, cfg, starts)
	if err != nil {
		st.disarmStop()
		w.mem.Free()
		t.host.budget.release(w.tables)
		return nil, false, err
	}
	w.mod, w.call = mod, mod.ExportedFunction("nanovm_call")
	return w, true, nil
}

// maxIdleStack is the largest call stack an idle pooled instance keeps;
// wazero starts one at 10 KiB.
const maxIdleStack = 64 << 10

// stackFieldOf is the index of the call stack ([]byte) in one function
// type, -1 when the type has none.
type stackFieldOf struct {
	t   reflect.Type
	idx int
}

// stackField caches stackFieldOf for the last function type asked about:
// a host runs one engine, whose functions are all of one type (wazero
// v1.12's compiler's callEngine), so it is asked about that one.
var stackField atomic.Pointer[stackFieldOf]

// stackBytes returns the size of the call stack fn holds, reading wazero's
// unexported field (only its length; wazero exposes no API for it), and
// false when fn has no such field, which the caller takes for "large".
func stackBytes(fn api.Function) (int, bool) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	t := v.Elem().Type()
	c := stackField.Load()
	if c == nil || c.t != t {
		c = &stackFieldOf{t: t, idx: -1}
		if f, found := t.FieldByName("stack"); found && len(f.Index) == 1 && f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8 {
			c.idx = f.Index[0]
		}
		stackField.Store(c)
	}
	if c.idx < 0 {
		return 0, false
	}
	return v.Elem().Field(c.idx).Len(), true
}
