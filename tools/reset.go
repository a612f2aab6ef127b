package tools

import (
	"context"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// A fresh call of a resettable tool (Tool.reset) may run in an instance an
// earlier call of the same tool left, reset first to exactly the state a
// new instance has before its start functions run: the module's whole
// mutable state is its one memory and its mutable globals (the module
// changes no table or segment, imports no memory, table or global, and
// calls only host functions that keep nothing per instance; see
// wasmbin.Module.Resettable and resettable), and both are restored
// through the runtime's public API from an image taken right after the
// tool's first instantiation. Any call that did not end cleanly (an error
// of any kind, a trap, a stop, a breached limit, an exit, a memory.grow,
// a secret held, a host panic) closes its instance instead. The rationale
// entry "Why may a fresh call reuse a reset instance, and for which
// modules?" argues the completeness.

// maxKept bounds the reset instances one tool keeps idle.
const maxKept = 8

// resetImports are the host functions a resettable module may import:
// each keeps no state per instance, or only state the slot rewinds per
// call (the clocks, the random source, the stdio streams). Anything that
// can change the WASI file table (fd_close, fd_renumber, path_open,
// fd_fdstat_set_flags, ...) or block on it is not here.
var resetImports = map[string]bool{
	"wasi_snapshot_preview1.args_get":            true,
	"wasi_snapshot_preview1.args_sizes_get":      true,
	"wasi_snapshot_preview1.environ_get":         true,
	"wasi_snapshot_preview1.environ_sizes_get":   true,
	"wasi_snapshot_preview1.clock_res_get":       true,
	"wasi_snapshot_preview1.clock_time_get":      true,
	"wasi_snapshot_preview1.random_get":          true,
	"wasi_snapshot_preview1.fd_read":             true,
	"wasi_snapshot_preview1.fd_write":            true,
	"wasi_snapshot_preview1.fd_fdstat_get":       true,
	"wasi_snapshot_preview1.fd_prestat_get":      true,
	"wasi_snapshot_preview1.fd_prestat_dir_name": true,
	"wasi_snapshot_preview1.proc_exit":           true,
	"wasi_snapshot_preview1.sched_yield":         true,
	"nanovm.log":                                 true,
	"nanovm.secret_get":                          true,
	"nanovm.http_request":                        true,
	"nanovm.state_get":                           true,
}

// resettable says whether t's fresh calls may reuse a reset instance,
// decided once from the module's own read and t's configuration.
func (t *Tool) resettable() bool {
	cm := t.mod
	switch {
	case !cm.resettable, t.pool != nil, cm.extism != "",
		t.caps[CapFS], len(t.Manifest.Mounts) > 0,
		t.cmd != nil && !t.cmd.fixed, // argv per call: the config differs
		uint64(cm.minPages)<<16 > memPoolMax:
		return false
	}
	for _, imp := range cm.imports {
		if !resetImports[imp] {
			return false
		}
	}
	return true
}

// resetImage is a resettable tool's instance right after instantiation,
// before any start function: the same for every instance, as nothing of
// the host enters it (no imported global; segment offsets are constants).
type resetImage struct {
	mem     []byte
	runs    [][2]int // the non-zero ranges of mem
	globals []uint64 // the values of the exported mutable globals
}

// kept is the live instance of a fresh slot kept for reuse, with the
// handles of what a call runs (each holds the runtime's call stack, so a
// reused instance allocates none).
type kept struct {
	mod     api.Module
	globals []api.MutableGlobal
	section api.Function   // the start section's function, or nil
	starts  []api.Function // the start functions the module exports
	names   []string       // their names
	call    api.Function   // nanovm_call for a reactor, nil for a command
	tables  uint64         // the budget its tables hold
}

// takeKept pops an idle kept slot of t, or returns nil.
func (t *Tool) takeKept() *freshSlot {
	t.keptMu.Lock()
	defer t.keptMu.Unlock()
	n := len(t.kept)
	if n == 0 {
		return nil
	}
	s := t.kept[n-1]
	t.kept[n-1] = nil
	t.kept = t.kept[:n-1]
	return s
}

// putKept keeps s idle, reporting false when t keeps enough already or
// the host is closing.
func (t *Tool) putKept(s *freshSlot) bool {
	t.keptMu.Lock()
	defer t.keptMu.Unlock()
	if len(t.kept) >= maxKept || t.host.closing.Load() {
		return false
	}
	t.kept = append(t.kept, s)
	return true
}

// closeKept closes s's instance and releases what it held.
func (s *freshSlot) closeKept(h *Host) {
	if k := s.inst; k != nil {
		_ = k.mod.Close(context.Background())
		h.budget.release(k.tables)
		s.inst = nil
	}
	s.mem.Free() // a no-op unless Close left it
}

// snapshot returns t's image, taking it from s's instance, just
// instantiated, if t has none yet; nil if s's instance does not match it.
func (t *Tool) snapshot(s *freshSlot) *resetImage {
	img := t.img.Load()
	if img == nil {
		img = &resetImage{mem: slices.Clone(s.mem.buf)}
		for i := 0; i < len(img.mem); {
			if img.mem[i] == 0 {
				i++
				continue
			}
			j := i + 1
			for j < len(img.mem) && (img.mem[j] != 0 || gapBelow(img.mem[j:], 64)) {
				j++
			}
			img.runs = append(img.runs, [2]int{i, j})
			i = j
		}
		for _, g := range s.inst.globals {
			img.globals = append(img.globals, g.Get())
		}
		if !t.img.CompareAndSwap(nil, img) {
			img = t.img.Load()
		}
	}
	if len(img.mem) != len(s.mem.buf) || len(img.globals) != len(s.inst.globals) {
		return nil
	}
	return img
}

// gapBelow reports whether b holds a non-zero byte within its first n.
func gapBelow(b []byte, n int) bool {
	for _, c := range b[:min(n, len(b))] {
		if c != 0 {
			return true
		}
	}
	return false
}

// restore resets s's instance to img: the memory's contents (its size is
// the image's, or the instance would not have been kept) and every
// mutable global. The stop flag is cleared when the call arms it.
func (s *freshSlot) restore(img *resetImage) {
	buf := s.mem.buf
	clear(buf)
	for _, r := range img.runs {
		copy(buf[r[0]:r[1]], img.mem[r[0]:r[1]])
	}
	for i, g := range s.inst.globals {
		g.Set(img.globals[i])
	}
	s.mem.peak = uint64(len(buf))
}

// bindKept takes from mod, just instantiated, the handles a call of t
// runs, reporting false when one is missing.
func (t *Tool) bindKept(s *freshSlot, mod api.Module) bool {
	k := &kept{mod: mod}
	s.inst = k
	for _, name := range t.mod.resetGlobals {
		g, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return false
		}
		k.globals = append(k.globals, g)
	}
	if t.mod.startSection {
		if k.section = mod.ExportedFunction(wasmbin.StartExport); k.section == nil {
			return false
		}
	}
	for _, fn := range t.starts {
		if f := mod.ExportedFunction(fn); f != nil {
			k.starts, k.names = append(k.starts, f), append(k.names, fn)
		}
	}
	if !t.mod.hasStart {
		if k.call = mod.ExportedFunction("nanovm_call"); k.call == nil {
			return false
		}
	}
	return true
}

// runReset is runFresh for a resettable tool: the call runs in a kept
// instance, reset, or in a new one, which it may keep for the next.
// It runs inside the call's share of the calls in flight (runFresh).
func (t *Tool) runReset(ctx context.Context, st *callState, stdin []byte) (err error) {
	s := t.takeKept()
	reuse := s != nil
	if !reuse {
		s = t.getSlot()
	}
	s.arm(st, stdin)
	var img *resetImage
	keep := false
	defer func() {
		r := recover()
		if r != nil {
			err = fmt.Errorf("%w: host panic: %v", ErrTrap, r)
			keep = false
		}
		st.memBytes = s.mem.peak
		if keep {
			st.disarmStop() // no stop of this call reaches the idle instance
			s.disarm()
			if t.putKept(s) {
				return
			}
			s.closeKept(t.host)
		} else {
			s.closeKept(t.host) // before the disarm: a closing host waits for it
			st.disarmStop()
			s.disarm()
		}
		if r == nil {
			t.putSlot(s)
		}
	}()
	if reuse {
		t.host.stats.resets.Add(1)
		img = t.img.Load()
		s.restore(img)
	} else {
		var tb uint64
		if tb = t.mod.tableBytes; tb > 0 {
			if !t.host.reserve(tb) {
				st.fail(t.host.budget.err(tb))
				return st.failed()
			}
		}
		st.ctx.vals = s.vals
		t.host.stats.instantiations.Add(1)
		mod, err := t.host.rt.InstantiateModule(ctx, t.mod.code, s.cfg)
		if err != nil {
			t.host.budget.release(tb)
			return err
		}
		bound := t.bindKept(s, mod)
		s.inst.tables = tb
		if bound && st.failed() == nil && s.mem.region == nil {
			img = t.snapshot(s)
		}
		if err := s.stop.bind(mod); err != nil {
			return err
		}
	}
	k := s.inst
	st.armStop(&s.stop)
	if k.section != nil {
		if done, err := runStartFunc(ctx, k.mod, k.section, wasmbin.StartExport, true); done {
			return err
		}
	}
	for i, f := range k.starts {
		if done, err := runStartFunc(ctx, k.mod, f, k.names[i], false); done {
			return err
		}
	}
	if k.call != nil {
		if err := k.call.CallWithStack(ctx, s.stack[:]); err != nil {
			return err
		}
		if code := uint32(s.stack[0]); code != 0 {
			return sys.NewExitError(code)
		}
	}
	// Kept only what ended cleanly, at the image's size, with no secret
	// in it and no grown call stack.
	keep = img != nil && st.failed() == nil && ctx.Err() == nil && !k.mod.IsClosed() &&
		uint64(len(s.mem.buf)) == uint64(len(img.mem)) && k.mod.Memory().Size() == uint32(len(img.mem)) &&
		!st.heldSecret() && k.stacksSmall()
	return nil
}

// stacksSmall reports whether no handle of k holds a call stack a deep
// call grew past maxIdleStack.
func (k *kept) stacksSmall() bool {
	small := func(f api.Function) bool {
		n, ok := stackBytes(f)
		return f == nil || ok && n <= maxIdleStack
	}
	for _, f := range k.starts {
		if !small(f) {
			return false
		}
	}
	return small(k.section) && small(k.call)
}
