//go:build !unix

package tools

// mapRegion falls back to the Go heap where there is no mmap.
func mapRegion(n uint64) ([]byte, error) { return make([]byte, n), nil }

func unmapRegion([]byte) {}
