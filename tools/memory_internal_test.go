package tools

import (
	"bytes"
	"testing"
)

// Ensure a recycled guest memory comes back zero past what its new life
// wrote, however the lives before it grew: within a buffer's capacity,
// into a larger heap buffer (the old one recycled), a small life after a
// large one (whose buffer it is handed). recycle clears only the length
// the guest could reach, so this holds only while every buffer handed
// out is zero past its length.
func TestRecycledMemoryIsZero(t *testing.T) {
	h := newHost(t, HostOptions{})
	const page = 64 << 10
	for name, lives := range map[string][][]uint64{
		"one page":              {{page}, {page}},
		"within the capacity":   {{page, 2 * page}, {page, 2 * page}},
		"into a larger buffer":  {{page, 2 * page, 3 * page}, {page}},
		"small after large":     {{3 * page}, {page}, {2 * page}, {page}},
		"to the pool's largest": {{page, memPoolMax}, {page}, {memPoolMax}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, keep := range []bool{false, true} {
				m := &limitedMemory{limit: 1 << 30, host: h, onHit: func(err error) { t.Fatal(err) }, keep: keep}
				for round := range 3 {
					for life, grow := range lives {
						var used uint64 // what this life wrote, kept by growth
						for _, size := range grow {
							b := m.Reallocate(size)
							if uint64(len(b)) != size {
								t.Fatalf("Reallocate(%d) gave %d bytes", size, len(b))
							}
							if i := bytes.IndexByte(b[used:cap(b)], 0xA5); i >= 0 {
								t.Fatalf("keep=%v round %d life %d: growing to %d bytes (capacity %d), byte %d past what this life wrote is set", keep, round, life, size, cap(b), int(used)+i)
							}
							for i := range b {
								b[i] = 0xA5
							}
							used = size
						}
						// The memory's next life (a fresh call's) starts
						// from what Free left.
						m.Free()
					}
				}
			}
		})
	}
}
