//go:build unix

package store

import "strconv"

// journalSupported: the journal needs flock, and a mapping of the bbolt
// file beyond its end that does not grow the file (not so on Windows).
const journalSupported = true

// journalMmapSize is how far ahead bbolt maps a journaled file (address
// space only: nothing is read or allocated until used).
const journalMmapSize = 64<<30*(strconv.IntSize/64) + 512<<20*(1-strconv.IntSize/64)

// journalMmap is journalMmapSize; tests lower it to reach remaps.
var journalMmap = journalMmapSize
