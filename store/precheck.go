package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// bbolt's on-disk meta page (format version 2), read before bbolt opens
// the file: bbolt trusts the meta page's page count and, for a file without
// a synced freelist, rebuilds the freelist in a goroutine of its own where a
// damaged page panics out of reach of any recover. See .rationale/storage.md
// "Why check the file before bbolt opens it?".
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltMetaSize     = 64 // up to and including the checksum
	boltNoFreelist   = ^uint64(0)
	boltDefaultPage  = 4096
	metaChecksumSpan = 56
)

type boltMeta struct {
	pageSize uint32
	freelist uint64
	pgid     uint64
	txid     uint64
}

// fileFacts is what precheck learned about an existing file.
type fileFacts struct {
	exists         bool
	freelistSynced bool
}

// precheck validates the meta pages of an existing file against its size.
// A file bbolt will reject anyway (no valid meta page) passes, so bbolt's
// own error is reported.
func precheck(path string) (fileFacts, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileFacts{}, nil
	}
	if err != nil {
		return fileFacts{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileFacts{}, err
	}
	if fi.Size() == 0 {
		return fileFacts{}, nil
	}
	m0, ok0 := readMeta(f, 0)
	off := int64(boltDefaultPage)
	if ok0 {
		off = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, off)
	var m boltMeta
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return fileFacts{exists: true, freelistSynced: true}, nil
	}
	if need := int64(m.pgid) * int64(m.pageSize); m.pgid > 1<<40 || need > fi.Size() {
		return fileFacts{}, fmt.Errorf("%w: file is %d bytes but its meta page records %d pages of %d bytes (truncated)", ErrCorrupt, fi.Size(), m.pgid, m.pageSize)
	}
	if m.freelist != boltNoFreelist {
		if err := checkFreelistPage(f, m, fi.Size()); err != nil {
			return fileFacts{}, err
		}
	}
	return fileFacts{exists: true, freelistSynced: m.freelist != boltNoFreelist}, nil
}

// checkFreelistPage holds the freelist page the meta names to the file:
// bbolt's Open allocates as many page ids as the page's count says before
// it reads them, so a damaged count is a fatal out-of-memory of the whole
// process (no recover catches it), not an error.
func checkFreelistPage(r io.ReaderAt, m boltMeta, size int64) error {
	const freelistFlag = 0x10
	ps := int64(m.pageSize)
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("%w: the meta page names freelist page %d of %d", ErrCorrupt, m.freelist, m.pgid)
	}
	var h [boltPageHeader + 8]byte
	if _, err := r.ReadAt(h[:], int64(m.freelist)*ps); err != nil {
		return fmt.Errorf("%w: read freelist page %d: %w", ErrCorrupt, m.freelist, err)
	}
	le := binary.LittleEndian
	flags, count, overflow := le.Uint16(h[8:]), uint64(le.Uint16(h[10:])), int64(le.Uint32(h[12:]))
	if flags&freelistFlag == 0 {
		return fmt.Errorf("%w: page %d, named the freelist, has flags %#x", ErrCorrupt, m.freelist, flags)
	}
	start := uint64(boltPageHeader)
	if count == 0xFFFF { // the real count is the first element
		count, start = le.Uint64(h[boltPageHeader:]), boltPageHeader+8
	}
	extent := (overflow + 1) * ps
	if int64(m.freelist)*ps+extent > size || count > uint64(extent)/8 || start+count*8 > uint64(extent) {
		return fmt.Errorf("%w: freelist page %d records %d page ids in %d bytes (file %d bytes)", ErrCorrupt, m.freelist, count, extent, size)
	}
	return nil
}

func readMeta(r io.ReaderAt, pageOff int64) (boltMeta, bool) {
	var b [boltMetaSize]byte
	if _, err := r.ReadAt(b[:], pageOff+boltPageHeader); err != nil {
		return boltMeta{}, false
	}
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(b[:metaChecksumSpan])
	if le.Uint32(b[0:]) != boltMagic || le.Uint32(b[4:]) != boltVersion || le.Uint64(b[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: le.Uint32(b[8:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	return m, m.pageSize >= 512
}

// walk reads every key and value of every bucket, faulting in every page,
// so a damaged or missing page shows up here, under guard, rather than later.
func walk(tx *bolt.Tx) error {
	var sink byte
	var visit func(b *bolt.Bucket) error
	visit = func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sink ^= k[0] ^ k[len(k)-1]
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					if err := visit(nb); err != nil {
						return err
					}
				}
				continue
			}
			if len(v) > 0 {
				sink ^= v[0] ^ v[len(v)-1]
			}
		}
		return nil
	}
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return visit(b) })
	_ = sink
	return err
}
