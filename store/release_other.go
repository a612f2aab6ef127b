//go:build !unix

package store

import "os"

// releaseFile closes a file bbolt left open when it panicked mid-Open.
func releaseFile(f *os.File) { _ = f.Close() }
