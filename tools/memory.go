package tools

import (
	"fmt"
)

// limitedMemory backs a guest's linear memory and refuses to grow past the
// tool's ceiling, failing the call with a clear error rather than leaving
// the guest to turn a failed memory.grow into an obscure trap. Every byte
// it holds is charged to the host's memory budget first, so the memories
// of all live instances together stay within Ceilings.MemoryBudgetMiB.
//
// A small memory (up to memPoolMax) lives on the Go heap and is recycled
// through memPool. Past that, the memory moves once into an anonymous
// mapping of the whole ceiling, reserved but not touched (mapRegion): it
// then grows in place, without the copies and garbage of doubling, and
// Free unmaps it, so its pages leave the process at once instead of
// waiting for the collector.
//
// Reallocate runs on the call's goroutine; Free runs there too (wazero
// defers closing a cancelled module's resources to the calling goroutine)
// except while the host closes, when it may run under a live guest.
type limitedMemory struct {
	buf     []byte
	region  []byte // the mapping buf lives in, once it outgrew the heap
	charged uint64 // bytes reserved in the host's budget
	limit   uint64
	// held is the part of the call's memory ceiling the module's tables,
	// segments and globals take (compiledModule.tableBytes), for messages:
	// the ceiling a manifest names is limit+held.
	held  uint64
	onHit func(error)
	host  *Host
	// peak is the largest size the guest asked for within its limit.
	peak uint64
	// keep, for a fresh slot's memory, keeps its zeroed heap buffer in
	// spare for the slot's next call rather than in memPool (whose Put
	// allocates, and whose buffers the collector drops).
	keep  bool
	spare []byte
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		if m.held > 0 {
			m.onHit(detail(ErrMemoryLimit, "memory limit %s exceeded (%s of it held for the module's tables, segments and globals)", mib(m.limit+m.held), mib(m.held)))
		} else {
			m.onHit(detail(ErrMemoryLimit, "memory limit %s exceeded", mib(m.limit)))
		}
		return m.refused(size)
	}
	m.peak = max(m.peak, size)
	if m.region != nil {
		if !m.charge(size) {
			return m.refused(size)
		}
		m.buf = m.region[:size]
		return m.buf
	}
	if uint64(cap(m.buf)) >= size {
		m.buf = m.buf[:size]
		return m.buf
	}
	if capacity := min(max(size, 2*uint64(cap(m.buf))), m.limit); capacity <= memPoolMax {
		if !m.charge(capacity) {
			return m.refused(size)
		}
		nb := m.alloc(size, capacity)
		copy(nb, m.buf)
		m.recycle()
		m.buf = nb
		return nb
	}
	if !m.charge(size) {
		return m.refused(size)
	}
	region, err := mapRegion(m.limit)
	if err != nil {
		m.onHit(detail(ErrMemoryLimit, "reserve %s of memory: %v", mib(m.limit), err))
		return m.refused(size)
	}
	copy(region, m.buf)
	m.recycle()
	m.region, m.buf = region, region[:size]
	return m.buf
}

// charge makes the budget hold total bytes for m, reporting false (and
// failing the call) when the budget has no room for the difference.
func (m *limitedMemory) charge(total uint64) bool {
	if total <= m.charged {
		return true
	}
	if !m.host.reserve(total - m.charged) {
		m.onHit(m.host.budget.err(total - m.charged))
		return false
	}
	m.charged = total
	return true
}

// refused answers a growth that was refused (the call already failed):
// nil, for a memory.grow; for the initial allocation, where nil would make
// the runtime panic, a buffer of the size asked, mapped untouched and not
// charged, which the cancelled context keeps the guest from using.
func (m *limitedMemory) refused(size uint64) []byte {
	if m.buf != nil || m.region != nil {
		return nil
	}
	if size > memPoolMax {
		if region, err := mapRegion(size); err == nil {
			m.region, m.buf = region, region
			return m.buf
		}
	}
	m.buf = make([]byte, size)
	return m.buf
}

// recycle hands m's heap buffer back to memPool (or to spare), zeroed.
// Only buf's length is cleared: the guest reaches no byte past it, and
// every buffer alloc hands out is zero through its capacity, so the rest
// is zero still. A small tool's memory handed a large pooled buffer then
// costs what it used, not the buffer's size, per call.
func (m *limitedMemory) recycle() {
	if c := cap(m.buf); c > 0 && c <= memPoolMax && m.region == nil {
		clear(m.buf)
		if m.keep && cap(m.spare) < c {
			m.spare = m.buf[:c]
			m.buf = nil
			return
		}
		// b is declared here so that it escapes (for Put) only when used.
		b := m.buf[:c]
		m.buf = nil
		memPool.Put(&b)
	}
}

// Free releases m's memory and its charge; a second Free does nothing.
// Small heap buffers go back to memPool, as most tools fit in a page or
// two and reusing their memory spares the collector ~64 KiB per call.
func (m *limitedMemory) Free() {
	// While the host closes, the runtime frees memories from another
	// goroutine, possibly under a still-running guest: never reuse or
	// unmap those (a mapping stays until the process exits).
	live := m.host != nil && !m.host.closing.Load()
	switch {
	case m.region != nil:
		if live {
			unmapRegion(m.region)
		}
		m.region = nil
	case live:
		m.recycle()
	}
	m.buf = nil
	if m.host != nil {
		m.host.budget.release(m.charged)
	}
	m.charged = 0
}

func mib(b uint64) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}
