package tools

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// stopper is one instance's stop flag: the global $stop the rewriter
// appended to its module (wasmbin.Instrument), which the guest's own code
// reads at every loop iteration and guarded function entry and traps on
// when it is 1. The host sets it when the call's deadline context ends
// (timeout, cancel, a limit breached) or the host closes, and only for the
// call that armed it: a timer of an earlier call that fires late, after
// its call ended and the instance serves the next one, names an older
// generation and changes nothing.
type stopper struct {
	mu    sync.Mutex
	flag  api.MutableGlobal
	gen   uint64
	armed bool
	// prev and next link the armed stoppers of a host (Host.running).
	prev, next *stopper
	host       *Host
}

// bind takes the flag of mod, a fresh instance of an instrumented module.
func (s *stopper) bind(mod api.Module) error {
	g, ok := mod.ExportedGlobal(wasmbin.StopExport).(api.MutableGlobal)
	if !ok {
		return fmt.Errorf("%w: the instance has no stop flag", ErrTrap)
	}
	s.mu.Lock()
	s.flag, s.armed = g, false
	s.mu.Unlock()
	return nil
}

// arm clears the flag for a new call and returns its generation.
func (s *stopper) arm() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.armed = true
	s.flag.Set(0)
	return s.gen
}

// stop sets the flag if the call of generation gen is still the armed one.
func (s *stopper) stop(gen uint64) {
	s.mu.Lock()
	if s.armed && s.gen == gen {
		s.flag.Set(1)
	}
	s.mu.Unlock()
}

// disarm ends the armed call: no stop of its generation sets the flag
// any more.
func (s *stopper) disarm() {
	s.mu.Lock()
	s.armed = false
	s.mu.Unlock()
}

// armStop arms s for st's call: the flag is set when st's deadline
// context ends, at once if it ended already. The host's Close sets it too.
// disarmStop undoes it; it must run before the instance serves another
// call.
func (st *callState) armStop(s *stopper) {
	gen := s.arm()
	h := st.tool.host
	h.runMu.Lock()
	s.host = h
	s.next = h.running
	if s.next != nil {
		s.next.prev = s
	}
	s.prev = nil
	h.running = s
	closing := h.closing.Load()
	h.runMu.Unlock()
	st.mu.Lock()
	dl := st.dl
	st.stop, st.stopGen = s, gen
	st.mu.Unlock()
	ended := closing
	if dl != nil {
		ended = dl.watch(s, gen) || ended
	}
	if ended {
		s.stop(gen)
	}
}

// disarmStop disarms the stopper armStop armed, if any.
func (st *callState) disarmStop() {
	st.mu.Lock()
	s, dl := st.stop, st.dl
	st.stop = nil
	st.mu.Unlock()
	if s == nil {
		return
	}
	if dl != nil {
		dl.watch(nil, 0)
	}
	s.disarm()
	h := s.host
	h.runMu.Lock()
	if s.prev != nil {
		s.prev.next = s.next
	} else if h.running == s {
		h.running = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	}
	s.prev, s.next = nil, nil
	h.runMu.Unlock()
}

// stopRunning sets the flag of every armed instance, the host closing,
// and waits until every one is disarmed (its call closed it or made it
// idle), ctx ends, or closeWait passes: the runtime's close then finds no
// guest running (a guest blocked in a host function may still be).
func (h *Host) stopRunning(ctx context.Context) {
	h.runMu.Lock()
	for s := h.running; s != nil; s = s.next {
		s.mu.Lock()
		if s.armed {
			s.flag.Set(1)
		}
		s.mu.Unlock()
	}
	h.runMu.Unlock()
	deadline := time.Now().Add(closeWait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		h.runMu.Lock()
		idle := h.running == nil
		h.runMu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// closeWait bounds how long Close waits for stopped guests to end.
const closeWait = 2 * time.Second

// startInstance arms the stop flag of mod, a fresh instance instantiated
// with no start function, for st's call, then runs what InstantiateModule
// would have run: the module's start section (moved to
// wasmbin.StartExport by the rewriter), then each of starts that mod
// exports, stopping at the first error as wazero does (the module is then
// closed; an exit with code 0 is no error, another exit code is returned
// as it is, anything else is wrapped as wazero wraps it).
func (st *callState) startInstance(ctx context.Context, mod api.Module, s *stopper, section bool, starts []string) error {
	if err := s.bind(mod); err != nil {
		_ = mod.Close(context.Background())
		return err
	}
	st.armStop(s)
	// Only what the module exports is looked up: a missing export costs
	// wazero an error value (three allocations) per call.
	if section {
		if done, err := runStart(ctx, mod, wasmbin.StartExport, true); done {
			return err
		}
	}
	for _, fn := range starts {
		if done, err := runStart(ctx, mod, fn, false); done {
			return err
		}
	}
	return nil
}

// runStart calls mod's start function fn (the start section's, moved to
// an export, when section); done says the instance's start ended there:
// it failed, or it exited, with code 0 (err nil) or not.
func runStart(ctx context.Context, mod api.Module, fn string, section bool) (done bool, err error) {
	f := mod.ExportedFunction(fn)
	if f == nil {
		return false, nil
	}
	return runStartFunc(ctx, mod, f, fn, section)
}

// runStartFunc is runStart with f, mod's export fn, looked up already.
func runStartFunc(ctx context.Context, mod api.Module, f api.Function, fn string, section bool) (done bool, err error) {
	if _, err := f.Call(ctx); err != nil {
		_ = mod.Close(ctx)
		if se, ok := err.(*sys.ExitError); ok {
			if se.ExitCode() == 0 {
				return true, nil
			}
			return true, err
		}
		if section {
			// As wazero words a failed start section.
			return true, fmt.Errorf("start function failed: %w", err)
		}
		return true, fmt.Errorf("module[] function[%s] failed: %w", fn, err)
	}
	return false, nil
}

// instantiate instantiates t's module with cfg, no start function running
// inside the runtime, then arms s and runs the start functions
// (startInstance). The module is nil when an error is returned; it is
// closed already when a start function exited with code 0 (a command that
// ran to its end), as wazero's InstantiateModule leaves it.
//
// cfg derives from t.base, which names no start function (prepare), so
// it is passed as it is: WithStartFunctions() here would clone it (two
// allocations per instance) to the same effect.
func (t *Tool) instantiate(ctx context.Context, st *callState, s *stopper, cfg wazero.ModuleConfig, starts []string) (api.Module, error) {
	mod, err := t.host.rt.InstantiateModule(ctx, t.mod.code, cfg)
	if err != nil {
		return nil, err
	}
	if err := st.startInstance(ctx, mod, s, t.mod.startSection, starts); err != nil {
		return nil, err
	}
	return mod, nil
}
