package tools

import (
	"sync"
)

// outPool recycles stdout buffers: every call has one, and its bytes are
// dead once decoded.
var outPool sync.Pool // *[]byte, len 0

// outPoolMax bounds the stdout buffers outPool keeps.
const outPoolMax = 64 << 10

func getOutBuf() *[]byte {
	if p, ok := outPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 512)
	return &b
}

// putOutBuf keeps b (which grew from *p) in p for the next call.
func putOutBuf(p *[]byte, b []byte) {
	if cap(b) > outPoolMax {
		return
	}
	*p = b[:0]
	outPool.Put(p)
}

// memPoolMax bounds the buffers memPool keeps.
const memPoolMax = 256 << 10

var memPool sync.Pool // *[]byte, zeroed, cap <= memPoolMax

// alloc returns a zeroed buffer of len size, from memPool when one fits.
func (m *limitedMemory) alloc(size, capacity uint64) []byte {
	if uint64(cap(m.spare)) >= capacity {
		b := m.spare[:size]
		m.spare = nil
		return b
	}
	if capacity <= memPoolMax {
		if p, ok := memPool.Get().(*[]byte); ok {
			if uint64(cap(*p)) >= capacity {
				return (*p)[:size]
			}
			memPool.Put(p)
		}
	}
	return make([]byte, size, capacity)
}
