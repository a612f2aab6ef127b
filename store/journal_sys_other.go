//go:build !unix

package store

const journalSupported = false

const journalMmapSize = 0

var journalMmap = journalMmapSize
