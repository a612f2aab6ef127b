package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The write-ahead journal: one fdatasync per group commit instead of
// bbolt's two. The committer appends each transaction's mutations to
// <db>.journal as one checksummed record and fdatasyncs it, then commits
// the bbolt transaction without syncing (bbolt's NoSync). A journal
// checkpoint (db.Sync, then the bbolt file's two meta pages saved in a
// header slot of the journal) marks a bbolt state as durable; a read
// transaction held open at exactly that state keeps bbolt from reusing
// any page it can reach. After an unclean stop Open writes the saved meta
// pages back, so bbolt sees the checkpointed state whatever a power cut
// left of later pages, and replays the records after it. See
// .rationale/storage.md "Why a write-ahead journal in front of bbolt, and
// why is it safe?" and docs/journal.md for the format.

// JournalSuffix is appended to the database path to name its journal.
// Whoever copies or removes a database file must copy or remove the
// journal with it (and the vault key, .vault-key).
const JournalSuffix = ".journal"

// DefaultJournalBytes is the journal's default size.
const DefaultJournalBytes = 8 << 20

const (
	jSlotSize  = 4096
	jDataStart = 2 * jSlotSize
	// jMetaSave is how much of each bbolt meta page a checkpoint keeps:
	// the page header and the meta (80 bytes); the rest of a meta page
	// is zeros bbolt never reads.
	jMetaSave = 128
	jRecHdr   = 40
	jRecMagic = 0x4e564a52 // "NVJR"
	// jMinBytes is the smallest journal: the slots and a few records.
	jMinBytes = jDataStart + 64<<10
	// jSlotBody is the checksummed part of a header slot.
	jSlotBody = 72 + 2*jMetaSave
)

var jSlotMagic = [8]byte{'N', 'V', 'M', 'J', 'R', 'N', 'L', '1'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// jSlot is one header slot: the journal checkpoint it records. The valid
// slot with the higher gen is current.
type jSlot struct {
	gen  uint64
	salt uint64 // records after this checkpoint carry it
	lap  uint32 // lap of the first record after the checkpoint
	// metas: the slot holds the bbolt meta pages of the checkpointed
	// state. Without them the bbolt file is authoritative by itself
	// (bbolt's own synced commits) and no record follows.
	metas    bool
	pos      int64  // offset of the first record after the checkpoint
	seq      uint64 // its sequence number
	txid     uint64 // bbolt's txid at the checkpoint
	size     int64  // the journal file's size
	pageSize uint32
	meta     [2][jMetaSave]byte
}

func (s *jSlot) encode() []byte {
	b := make([]byte, jSlotBody+4)
	le := binary.LittleEndian
	copy(b[0:8], jSlotMagic[:])
	le.PutUint64(b[8:], s.gen)
	le.PutUint64(b[16:], s.salt)
	le.PutUint32(b[24:], s.lap)
	if s.metas {
		le.PutUint32(b[28:], 1)
	}
	le.PutUint64(b[32:], uint64(s.pos))
	le.PutUint64(b[40:], s.seq)
	le.PutUint64(b[48:], s.txid)
	le.PutUint64(b[56:], uint64(s.size))
	le.PutUint32(b[64:], s.pageSize)
	copy(b[72:], s.meta[0][:])
	copy(b[72+jMetaSave:], s.meta[1][:])
	le.PutUint32(b[jSlotBody:], crc32.Checksum(b[:jSlotBody], castagnoli))
	return b
}

// decodeSlot parses a header slot; ok is false for a slot never
// written, torn or damaged.
func decodeSlot(b []byte) (s jSlot, ok bool) {
	if len(b) < jSlotBody+4 || [8]byte(b[0:8]) != jSlotMagic {
		return s, false
	}
	le := binary.LittleEndian
	if le.Uint32(b[jSlotBody:]) != crc32.Checksum(b[:jSlotBody], castagnoli) {
		return s, false
	}
	s.gen = le.Uint64(b[8:])
	s.salt = le.Uint64(b[16:])
	s.lap = le.Uint32(b[24:])
	flags := le.Uint32(b[28:])
	s.metas = flags&1 != 0
	s.pos = int64(le.Uint64(b[32:]))
	s.seq = le.Uint64(b[40:])
	s.txid = le.Uint64(b[48:])
	s.size = int64(le.Uint64(b[56:]))
	s.pageSize = le.Uint32(b[64:])
	copy(s.meta[0][:], b[72:])
	copy(s.meta[1][:], b[72+jMetaSave:])
	if flags&^1 != 0 || s.size < jMinBytes || s.size > 1<<40 || s.pos < jDataStart || s.pos > s.size {
		return s, false
	}
	return s, true
}

// jRecord is a decoded record header.
type jRecord struct {
	lap  uint32
	seq  uint64
	salt uint64
	txid uint64
	ops  []byte
}

// encodeRecordHeader fills the first jRecHdr bytes of rec (whose payload
// follows them) and its checksum.
func encodeRecordHeader(rec []byte, lap uint32, seq, salt, txid uint64) {
	le := binary.LittleEndian
	le.PutUint32(rec[0:], jRecMagic)
	le.PutUint32(rec[4:], lap)
	le.PutUint64(rec[8:], seq)
	le.PutUint64(rec[16:], salt)
	le.PutUint64(rec[24:], txid)
	le.PutUint32(rec[32:], uint32(len(rec)-jRecHdr))
	c := crc32.Update(0, castagnoli, rec[:36])
	c = crc32.Update(c, castagnoli, rec[jRecHdr:])
	le.PutUint32(rec[36:], c)
}

// errRecordEnd ends a journal scan: what follows is not a record of
// this checkpoint (never written, torn, stale, or damaged).
var errRecordEnd = errors.New("end of journal")

// decodeJRecordHeader parses the header at the start of b; the payload
// length is returned so the caller can read it.
func decodeJRecordHeader(b []byte) (r jRecord, n int, err error) {
	if len(b) < jRecHdr {
		return r, 0, errRecordEnd
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != jRecMagic {
		return r, 0, errRecordEnd
	}
	r.lap = le.Uint32(b[4:])
	r.seq = le.Uint64(b[8:])
	r.salt = le.Uint64(b[16:])
	r.txid = le.Uint64(b[24:])
	return r, int(le.Uint32(b[32:])), nil
}

// decodeJRecord checks a whole record (header and payload) against the
// lap, sequence number and salt the scan expects.
func decodeJRecord(b []byte, lap uint32, seq, salt uint64) (jRecord, error) {
	r, n, err := decodeJRecordHeader(b)
	if err != nil {
		return r, err
	}
	if r.lap != lap || r.seq != seq || r.salt != salt || n > len(b)-jRecHdr {
		return r, errRecordEnd
	}
	c := crc32.Update(0, castagnoli, b[:36])
	c = crc32.Update(c, castagnoli, b[jRecHdr:jRecHdr+n])
	if binary.LittleEndian.Uint32(b[36:]) != c {
		return r, errRecordEnd
	}
	r.ops = b[jRecHdr : jRecHdr+n]
	if err := checkOps(r.ops); err != nil {
		return r, errRecordEnd
	}
	return r, nil
}

// errJournalNoRoom: a new journal did not fit on the device.
var errJournalNoRoom = errors.New("no room for a new journal")

// journal is the open journal file. Only the committer (or Open, before
// the committer starts) touches it.
type journal struct {
	f    *os.File
	path string
	size int64

	ckpt     jSlot // the current (latest durable) checkpoint
	nextSlot int   // slot index the next checkpoint writes

	// The write head: where the next record goes.
	lap uint32
	pos int64
	seq uint64

	buf []byte // the record being built; header space first
}

// openJournal opens (creating or re-creating when it holds nothing to
// recover) the journal at path, locked against other processes. It
// returns the records to replay (nil for a clean journal) and the
// checkpoint they follow.
func openJournal(path string, size int64, timeout time.Duration) (j *journal, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := lockJournal(f, timeout); err != nil {
		return nil, err
	}
	j = &journal{f: f, path: path}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	var slots [2]jSlot
	var ok [2]bool
	buf := make([]byte, jSlotBody+4)
	for i := range slots {
		if fi.Size() >= int64(jDataStart) {
			if _, err := f.ReadAt(buf, int64(i*jSlotSize)); err != nil {
				return nil, fmt.Errorf("open journal: read header slot %d: %w", i, err)
			}
			slots[i], ok[i] = decodeSlot(buf)
			if ok[i] && slots[i].size != fi.Size() {
				ok[i] = false
			}
		}
	}
	cur := -1
	switch {
	case ok[0] && ok[1]:
		cur = 0
		if slots[1].gen > slots[0].gen {
			cur = 1
		}
	case ok[0]:
		cur = 0
	case ok[1]:
		cur = 1
	}
	if cur < 0 {
		// Never finished (a crash while creating it), or new: nothing
		// was ever acknowledged through it.
		if err := j.create(size); err != nil {
			if isDiskFull(err) {
				// No room for it: it goes, and the store runs on
				// bbolt's own syncs (see Open).
				_ = os.Remove(path)
				return nil, fmt.Errorf("%w: %w", errJournalNoRoom, err)
			}
			return nil, err
		}
		return j, nil
	}
	j.size = fi.Size()
	j.ckpt = slots[cur]
	j.nextSlot = 1 - cur
	j.lap, j.pos, j.seq = j.ckpt.lap, j.ckpt.pos, j.ckpt.seq
	return j, nil
}

// create zero-fills the journal to size and writes its first slot: the
// bbolt file is authoritative. Written, not fallocated, so that later
// records overwrite written extents and fdatasync flushes data only.
func (j *journal) create(size int64) error {
	size = max(size, jMinBytes)
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := j.f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("create journal: %w", err)
		}
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	j.size = size
	s := jSlot{gen: 1, salt: randU64(), lap: 1, pos: jDataStart, seq: 1, size: size}
	if err := j.writeSlot(0, s); err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	j.ckpt, j.nextSlot = s, 1
	j.lap, j.pos, j.seq = s.lap, s.pos, s.seq
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (j *journal) writeSlot(i int, s jSlot) error {
	if _, err := j.f.WriteAt(s.encode(), int64(i*jSlotSize)); err != nil {
		return fmt.Errorf("write journal header: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("sync journal header: %w", err)
	}
	return nil
}

// scan reads the records after the current checkpoint, in order, and
// leaves the write head after the last one.
func (j *journal) scan(fn func(r jRecord) error) error {
	if !j.ckpt.metas {
		return nil
	}
	lap, pos, seq, salt := j.ckpt.lap, j.ckpt.pos, j.ckpt.seq, j.ckpt.salt
	hdr := make([]byte, jRecHdr)
	var body []byte
	read := func(at int64, lap uint32) (jRecord, int64, error) {
		if at+jRecHdr > j.size {
			return jRecord{}, 0, errRecordEnd
		}
		if _, err := j.f.ReadAt(hdr, at); err != nil {
			return jRecord{}, 0, fmt.Errorf("read journal: %w", err)
		}
		r, n, err := decodeJRecordHeader(hdr)
		if err != nil || r.lap != lap || r.seq != seq || r.salt != salt || at+jRecHdr+int64(n) > j.size {
			return jRecord{}, 0, errRecordEnd
		}
		if cap(body) < jRecHdr+n {
			body = make([]byte, jRecHdr+n)
		}
		b := body[:jRecHdr+n]
		if _, err := j.f.ReadAt(b, at); err != nil {
			return jRecord{}, 0, fmt.Errorf("read journal: %w", err)
		}
		r, err = decodeJRecord(b, lap, seq, salt)
		return r, int64(jRecHdr + n), err
	}
	for {
		r, n, err := read(pos, lap)
		if errors.Is(err, errRecordEnd) && lap == j.ckpt.lap {
			// A record that did not fit before the end went to the
			// start, one lap on.
			r2, n2, err2 := read(jDataStart, lap+1)
			switch {
			case err2 == nil:
				r, n, err = r2, n2, nil
				lap, pos = lap+1, jDataStart
			case !errors.Is(err2, errRecordEnd):
				err = err2
			}
		}
		if errors.Is(err, errRecordEnd) {
			break
		}
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		pos += n
		seq++
	}
	j.lap, j.pos, j.seq = lap, pos, seq
	return nil
}

// used is how many bytes of records follow the checkpoint.
func (j *journal) used() int64 {
	if j.lap == j.ckpt.lap {
		return j.pos - j.ckpt.pos
	}
	return (j.size - j.ckpt.pos) + (j.pos - jDataStart)
}

// maxRecord is the largest record the journal takes; a bigger
// transaction commits through bbolt's own syncs (see DB.syncedCommit).
func (j *journal) maxRecord() int { return int((j.size - jDataStart) / 2) }

// place returns where a record of n bytes goes, and whether it fits
// without overwriting a record after the checkpoint.
func (j *journal) place(n int64) (lap uint32, pos int64, ok bool) {
	lap, pos = j.lap, j.pos
	if pos+n > j.size {
		if lap != j.ckpt.lap {
			return lap, pos, false // wrapped once already
		}
		lap, pos = lap+1, jDataStart
	}
	if lap != j.ckpt.lap && pos+n > j.ckpt.pos {
		return lap, pos, false
	}
	return lap, pos, true
}

// begin starts a record in j.buf.
func (j *journal) begin() {
	if cap(j.buf) < jRecHdr {
		j.buf = make([]byte, jRecHdr, 64<<10)
	}
	j.buf = j.buf[:jRecHdr]
}

// opsLen is the payload built so far.
func (j *journal) opsLen() int { return len(j.buf) - jRecHdr }

// write appends the record in j.buf (placed by place) and syncs it.
// On error nothing is acknowledged and the head does not move; the
// caller checkpoints, which makes whatever was written stale.
func (j *journal) write(lap uint32, pos int64, txid uint64) error {
	encodeRecordHeader(j.buf, lap, j.seq, j.ckpt.salt, txid)
	if _, err := j.f.WriteAt(j.buf, pos); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.lap, j.pos, j.seq = lap, pos+int64(len(j.buf)), j.seq+1
	return nil
}

// trim drops a huge batch's buffer once the committer is done with the
// record (it keeps the operations of an acknowledged one: ackBatch).
func (j *journal) trim() {
	if cap(j.buf) > 4<<20 {
		j.buf = nil
	}
}

// checkpoint records s (whose salt, lap, pos and seq it fills from the
// write head) in the next slot and syncs it.
func (j *journal) checkpoint(s jSlot) error {
	s.gen = j.ckpt.gen + 1
	s.salt = randU64()
	s.lap, s.pos, s.seq = j.lap, j.pos, j.seq
	s.size = j.size
	if err := j.writeSlot(j.nextSlot, s); err != nil {
		return err
	}
	j.ckpt = s
	j.nextSlot = 1 - j.nextSlot
	return nil
}

func (j *journal) close() error {
	unlockJournal(j.f)
	return j.f.Close()
}

func randU64() uint64 {
	var b [8]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return binary.LittleEndian.Uint64(b[:])
}
