package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
	"github.com/nanovm/nano-vm-mcp/kernel"
)

// checkID rejects ids the store cannot key by: empty, over MaxIDBytes,
// or holding a NUL byte (the composite keys' separator). What a client
// may pass is narrower (CheckID, applied where requests arrive); stored
// records' ids are not re-checked on read.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty %s id", ErrInvalidID, what)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%w: %s id %s is %d bytes, over the %d-byte limit", ErrInvalidID, what, Clip(id), len(id), MaxIDBytes)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: %s id %s contains a NUL byte", ErrInvalidID, what, Clip(id))
	}
	return nil
}

// PutRun implements RunStore.
func (db *DB) PutRun(ctx context.Context, e Run) (Run, error) {
	out, _, err := db.PutRunStored(ctx, e)
	return out, err
}

// PutRunStored implements RunRecordStore.
func (db *DB) PutRunStored(ctx context.Context, e Run) (Run, StoredRun, error) {
	if err := checkRun(e); err != nil {
		return Run{}, StoredRun{}, fmt.Errorf("put run: %w", err)
	}
	now := db.now().UTC()
	var out Run
	var stored []byte
	err := db.update(ctx, func(tx *bolt.Tx) error {
		replaces := tx.Bucket(bucketRuns).Get([]byte(e.ID)) != nil
		rec, v, err := putRun(tx, e, now)
		out, stored = rec, v
		if err != nil || !replaces {
			return err
		}
		// A rewrite of the record that no step commit carries is sealed
		// by an envelope of its own, so verify can hold the record to
		// the chain (see .rationale/storage.md "Why does every envelope
		// commit to the records a trace shows?").
		// It commits to the input and program as stored too, so a run
		// that ends before its first step is covered as well.
		d := Envelope{
			Kind: EnvelopeKindRun, TraceID: e.ID, PolicyHash: e.PolicyHash,
			RunSHA256: RecordSHA256(v), RunStatus: string(e.Status), Payload: statusPayload(e.Status),
		}
		var stored Run
		stored.ID = e.ID
		if err := loadBody(tx, &stored); err != nil {
			return err
		}
		if len(stored.Input) > 0 {
			d.InputSHA256 = RecordSHA256(stored.Input)
		}
		if len(stored.Program) > 0 {
			d.ProgramSHA256 = RecordSHA256(stored.Program)
		}
		return db.appendRecordEnvelope(tx, d)
	})
	if err != nil {
		return Run{}, StoredRun{}, fmt.Errorf("put run %q: %w", e.ID, err)
	}
	return out, StoredRun{v: stored, status: e.Status}, nil
}

func checkRun(e Run) error {
	if err := checkID("trace", e.ID); err != nil {
		return err
	}
	if e.ProgramID != "" {
		if err := checkID("program", e.ProgramID); err != nil {
			return err
		}
	}
	for _, f := range [...]struct {
		name string
		raw  json.RawMessage
	}{{"input", e.Input}, {"program", e.Program}, {"header", e.Header}} {
		if len(f.raw) == 0 {
			continue
		}
		valid := false
		if f.name == "program" {
			valid = validProgram(f.raw)
		} else {
			valid = jsonwrite.Valid(f.raw)
		}
		if !valid {
			return fmt.Errorf("run %q: %s is not valid JSON", e.ID, f.name)
		}
	}
	return nil
}

// lastValidProgram is a copy of the last program validProgram found
// valid JSON: every run of a program stores the same bytes, which are
// then compared (a memcmp) rather than scanned again.
var lastValidProgram atomic.Pointer[[]byte]

// maxRememberedProgram bounds the program lastValidProgram copies.
const maxRememberedProgram = 64 << 10

// validProgram is jsonwrite.Valid(raw), remembering the last program it
// found valid.
func validProgram(raw []byte) bool {
	if p := lastValidProgram.Load(); p != nil && bytes.Equal(*p, raw) {
		return true
	}
	if !jsonwrite.Valid(raw) {
		return false
	}
	if len(raw) <= maxRememberedProgram {
		c := bytes.Clone(raw)
		lastValidProgram.Store(&c)
	}
	return true
}

// runBody is the part of a run written once and read rarely:
// kept apart so that the per-step rewrite of the run record stays
// small, whatever the size of the program and its input.
type runBody struct {
	Input   json.RawMessage `json:"input,omitempty"`
	Program json.RawMessage `json:"program,omitempty"`
	// A body written by an older release may also hold "checkpoint", a
	// field nothing read: decoding ignores it and the next write drops it.
}

// putRun writes e and its index entries inside tx, replacing any
// earlier record and its entries, and returns the record's stored bytes.
// Input and Program left empty keep their stored values: a
// step commit need not resend them.
func putRun(tx *bolt.Tx, e Run, now time.Time) (Run, []byte, error) {
	if len(e.Input) > 0 || len(e.Program) > 0 {
		bodies := tx.Bucket(bucketRunBodies)
		var body runBody
		if old := bodies.Get([]byte(e.ID)); old != nil {
			if err := decodeRecord(old, &body); err != nil {
				return e, nil, err
			}
		}
		if len(e.Input) > 0 {
			body.Input = e.Input
		}
		if len(e.Program) > 0 {
			body.Program = e.Program
		}
		if err := put(tx, bucketRunBodies, []byte(e.ID), encodeBody(body)); err != nil {
			return e, nil, err
		}
	}
	full := e
	e.Input, e.Program = nil, nil
	b := tx.Bucket(bucketRuns)
	if old := b.Get([]byte(e.ID)); old != nil {
		var prev Run
		if err := decodeRecord(old, &prev); err != nil {
			return e, nil, err
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = prev.CreatedAt
		}
		if err := unindexRun(tx, prev); err != nil {
			return e, nil, err
		}
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.UpdatedAt = now
	v, err := encodeRun(&e)
	if err != nil {
		return e, nil, err
	}
	if err := put(tx, bucketRuns, []byte(e.ID), v); err != nil {
		return e, nil, err
	}
	tk := timeKey(e.CreatedAt, e.ID)
	if err := put(tx, bucketRunTime, tk, nil); err != nil {
		return e, nil, err
	}
	if e.ProgramID != "" {
		if err := put(tx, bucketRunProgram, programRunKey(e.ProgramID, tk), nil); err != nil {
			return e, nil, err
		}
	}
	if unfinished(e.Status) {
		if err := put(tx, bucketRunOpen, tk, nil); err != nil {
			return e, nil, err
		}
	}
	e.Input, e.Program = full.Input, full.Program
	return e, v, nil
}

// encodeBody writes a body with its values verbatim (json.Marshal would
// compact and re-escape them): Run returns the input and program
// byte for byte as they were put, so their hashes in the envelopes can be
// checked against what is stored. checkRun made sure each is valid
// JSON.
func encodeBody(b runBody) []byte {
	v := make([]byte, 0, len(b.Input)+len(b.Program)+48)
	sep := byte('{')
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"input", b.Input}, {"program", b.Program}} {
		if len(f.raw) == 0 {
			continue
		}
		v = append(v, sep, '"')
		v = append(v, f.name...)
		v = append(v, '"', ':')
		v = append(v, f.raw...)
		sep = ','
	}
	if sep == '{' {
		return append(v, "{}"...)
	}
	return append(v, '}')
}

// statusPayload is the payload of a run envelope.
func statusPayload(status kernel.Status) json.RawMessage {
	b, _ := json.Marshal(map[string]kernel.Status{"status": status})
	return b
}

// appendRecordEnvelope seals and appends an envelope built inside the
// transaction (the store's own records of a rewrite or a deletion, off
// the step path).
func (db *DB) appendRecordEnvelope(tx *bolt.Tx, d Envelope) error {
	s, err := newSealer(d)
	if err != nil {
		return err
	}
	_, err = db.appendEnvelope(tx, s)
	return err
}

// loadBody fills e's Input and Program from the body bucket.
func loadBody(tx *bolt.Tx, e *Run) error {
	v := tx.Bucket(bucketRunBodies).Get([]byte(e.ID))
	if v == nil {
		return nil
	}
	var body runBody
	if err := decodeRecord(v, &body); err != nil {
		return err
	}
	e.Input, e.Program = body.Input, body.Program
	return nil
}

func unfinished(status kernel.Status) bool {
	return status == kernel.StatusRunning || status == kernel.StatusSuspended
}

func programRunKey(programID string, tk []byte) []byte {
	k := make([]byte, 0, len(programID)+1+len(tk))
	k = append(k, programID...)
	k = append(k, 0)
	return append(k, tk...)
}

func unindexRun(tx *bolt.Tx, e Run) error {
	tk := timeKey(e.CreatedAt, e.ID)
	if err := del(tx, bucketRunTime, tk); err != nil {
		return err
	}
	if e.ProgramID != "" {
		if err := del(tx, bucketRunProgram, programRunKey(e.ProgramID, tk)); err != nil {
			return err
		}
	}
	return del(tx, bucketRunOpen, tk)
}

// deleteRun removes a run, its steps, its index entries and
// the idempotency key that started it. Envelopes stay, and one more
// records the deletion, so verify knows the records are meant to be gone.
func (db *DB) deleteRun(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketRuns)
	v := b.Get([]byte(id))
	if v == nil {
		return nil
	}
	var e Run
	if err := decodeRecord(v, &e); err != nil {
		return err
	}
	if err := unindexRun(tx, e); err != nil {
		return err
	}
	steps := tx.Bucket(bucketSteps)
	prefix := append([]byte(id), 0)
	var keys, vals [][]byte
	c := steps.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
	}
	for i, k := range keys {
		if err := delStep(tx, k, vals[i]); err != nil {
			return err
		}
	}
	if e.IdempotencyKey != "" {
		if rec, ok, err := getIdem(tx, e.IdempotencyKey); err != nil {
			return err
		} else if ok && rec.TraceID == id {
			if err := deleteIdem(tx, rec); err != nil {
				return err
			}
		}
	}
	if err := del(tx, bucketRunBodies, []byte(id)); err != nil {
		return err
	}
	if err := del(tx, bucketRuns, []byte(id)); err != nil {
		return err
	}
	return db.appendRecordEnvelope(tx, Envelope{Kind: EnvelopeKindDelete, TraceID: id, PolicyHash: e.PolicyHash})
}

// Run implements RunStore.
func (db *DB) Run(ctx context.Context, id string) (Run, error) {
	var e Run
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if err := decodeRecord(v, &e); err != nil {
			return err
		}
		return loadBody(tx, &e)
	})
	if err != nil {
		return Run{}, fmt.Errorf("run %q: %w", id, err)
	}
	return e, nil
}

// Runs implements RunStore.
func (db *DB) Runs(ctx context.Context, f RunFilter) (RunPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	var after []byte
	if f.Cursor != "" {
		var err error
		if after, err = base64.RawURLEncoding.DecodeString(f.Cursor); err != nil || len(after) < 8 {
			return RunPage{}, fmt.Errorf("list runs: %w %s", ErrInvalidCursor, Clip(f.Cursor))
		}
	}
	var page RunPage
	err := db.view(ctx, func(tx *bolt.Tx) error {
		execs := tx.Bucket(bucketRuns)
		var c *bolt.Cursor
		var prefix []byte
		if f.ProgramID != "" {
			c = tx.Bucket(bucketRunProgram).Cursor()
			prefix = append([]byte(f.ProgramID), 0)
		} else {
			c = tx.Bucket(bucketRunTime).Cursor()
		}
		// Position on the newest key strictly before the upper bound.
		var bound []byte
		switch {
		case after != nil:
			bound = append(bytes.Clone(prefix), after...)
		case prefix != nil:
			bound = append([]byte(f.ProgramID), 1)
		}
		var k []byte
		if bound == nil {
			k, _ = c.Last()
		} else if k, _ = c.Seek(bound); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		var last []byte // the time key of the page's last entry
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			tk := k[len(prefix):]
			if len(page.Runs)+len(page.Skipped) == limit {
				page.NextCursor = base64.RawURLEncoding.EncodeToString(last)
				break
			}
			if len(tk) < 8 {
				return fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
			}
			id := tk[8:]
			v := execs.Get(id)
			if v == nil {
				// An index entry without its record: a damaged page. Say
				// so and go on, as for an undecodable record.
				page.Skipped = append(page.Skipped, SkippedRecord{ID: string(id), Error: "indexed but missing"})
				last = bytes.Clone(tk)
				continue
			}
			var e Run
			if err := decodeRecord(v, &e); err != nil {
				page.Skipped = append(page.Skipped, SkippedRecord{ID: string(id), Error: jsonlimit.Excerpt(err.Error(), 300)})
				last = bytes.Clone(tk)
				continue
			}
			if f.Status != "" && e.Status != f.Status {
				continue
			}
			page.Runs = append(page.Runs, e)
			last = bytes.Clone(tk)
		}
		return nil
	})
	if err != nil {
		return RunPage{}, fmt.Errorf("list runs: %w", err)
	}
	return page, nil
}

// Unfinished implements RunStore.
func (db *DB) Unfinished(ctx context.Context) ([]Run, error) {
	var out []Run
	err := db.view(ctx, func(tx *bolt.Tx) error {
		execs := tx.Bucket(bucketRuns)
		c := tx.Bucket(bucketRunOpen).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			v := execs.Get(k[8:])
			if v == nil {
				return fmt.Errorf("%w: run %q indexed but missing", ErrCorrupt, k[8:])
			}
			var e Run
			if err := decodeRecord(v, &e); err != nil {
				return fmt.Errorf("run %q: %w", k[8:], err)
			}
			if err := loadBody(tx, &e); err != nil {
				return fmt.Errorf("run %q: %w", k[8:], err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list unfinished runs: %w", err)
	}
	return out, nil
}

// CommitStep implements RunStore.
//
// A caller that waits anyway commits through here rather than
// StartCommitStep: alone, it commits on its own goroutine (see update).
func (db *DB) CommitStep(ctx context.Context, sc StepCommit) (*Envelope, error) {
	w, err := db.prepareStep(sc)
	if err != nil {
		return nil, err
	}
	if err := db.updateReq(ctx, &w.req); err != nil {
		return nil, fmt.Errorf("commit step %q/%d: %w", sc.Run.ID, sc.Index, err)
	}
	return w.envelope(), nil
}

// StartCommitStep implements RunStore.
//
// Everything that can be computed without the transaction (validation,
// the run record's JSON, the envelope's canonical form) is computed
// here, in the caller's goroutine: the single committer then only reads
// what it must, splices and writes.
func (db *DB) StartCommitStep(ctx context.Context, sc StepCommit) *PendingCommit {
	pc, complete := NewPendingCommit()
	w, err := db.prepareStep(sc)
	if err != nil {
		complete(nil, err)
		return pc
	}
	id, index := sc.Run.ID, sc.Index
	then := func(err error) {
		if err != nil {
			complete(nil, fmt.Errorf("commit step %q/%d: %w", id, index, err))
			return
		}
		complete(w.envelope(), nil)
	}
	w.req.then = then
	if err := db.queue1(ctx, &w.req); err != nil {
		then(err)
	}
	return pc
}

// stepWrite is a step commit prepared outside the transaction: what its
// write function uses, in one allocation with the sealer and the
// appended envelope (capturing sc instead would move the whole StepCommit
// to the heap; separate variables would be an allocation each).
type stepWrite struct {
	db *DB
	id string
	// key is the step's key, prevKey its predecessor's (nil for index
	// 0), step the step's own copy of the record and logScratch the room
	// for the step log's key and reference (putStep fills them in): all
	// in one buffer, with the sealer's bytes.
	key, prevKey, step, logScratch []byte
	upd                            *runUpdate // nil with KeepRun
	// runRecord, with KeepRun, is the stored record the envelope
	// commits to (StepCommit.RunRecord).
	runRecord []byte
	status    kernel.Status
	sealed    bool // the commit appends an envelope (seal is set)
	seal      sealer
	// req is the commit's request to the committer (fn is write).
	req writeReq
	// env is the appended envelope, nil until the write appended one:
	// &seal.d, which the appended envelope overwrites (a seal assigns
	// every field it links, so a later seal of the draft is the same),
	// or a re-seal's own.
	env *Envelope
}

// envelope is the envelope the write appended, nil without one.
func (w *stepWrite) envelope() *Envelope { return w.env }

// prepareStep validates sc and returns its write, whose write method the
// transaction runs.
func (db *DB) prepareStep(sc StepCommit) (*stepWrite, error) {
	// A kept record is not written: only the id it names is checked,
	// not the input, program and header the caller may still hold.
	if sc.KeepRun {
		if err := checkID("trace", sc.Run.ID); err != nil {
			return nil, fmt.Errorf("commit step: %w", err)
		}
	} else if err := checkRun(sc.Run); err != nil {
		return nil, fmt.Errorf("commit step: %w", err)
	}
	id := sc.Run.ID
	if sc.Index < 0 {
		return nil, fmt.Errorf("commit step %q/%d: negative index", id, sc.Index)
	}
	if !jsonwrite.Valid(sc.Step) {
		return nil, fmt.Errorf("commit step %q/%d: step is not valid JSON", id, sc.Index)
	}
	w := &stepWrite{db: db, id: id, status: sc.Run.Status}
	w.req.fn = w.write
	now := db.now().UTC()
	if !sc.KeepRun {
		var err error
		if w.upd, err = prepareUpdate(sc.Run, now); err != nil {
			return nil, fmt.Errorf("commit step %q/%d: %w", id, sc.Index, err)
		}
	}
	var draft Envelope
	if sc.Envelope != nil {
		d := *sc.Envelope
		if d.TraceID == "" {
			d.TraceID = id
		}
		if d.TraceID != id || (d.StepIndex != 0 && d.StepIndex != sc.Index) {
			return nil, fmt.Errorf("commit step %q/%d: envelope is for %q/%d", id, sc.Index, d.TraceID, d.StepIndex)
		}
		d.StepIndex = sc.Index
		// The envelope commits to the step record's exact stored bytes
		// and to the run record's: the fast path writes upd.v; a
		// fall back to putRun seals again with the bytes it wrote
		// (see write). Both hashes share one string.
		var sums [2 * 2 * sha256.Size]byte
		n := 1
		r := sha256.Sum256(sc.Step)
		hex.Encode(sums[:], r[:])
		switch {
		case w.upd != nil && w.upd.v != nil:
			x := sha256.Sum256(w.upd.v)
			hex.Encode(sums[2*sha256.Size:], x[:])
			n = 2
		case w.upd == nil && sc.RunRecord.v != nil:
			// The record stays as PutRunStored wrote it; the envelope
			// commits to it (write checks it is still what is stored).
			x := sha256.Sum256(sc.RunRecord.v)
			hex.Encode(sums[2*sha256.Size:], x[:])
			n = 2
			w.runRecord = sc.RunRecord.v
		}
		hs := string(sums[:n*2*sha256.Size])
		d.RecordSHA256, d.RunSHA256 = hs[:2*sha256.Size], hs[2*sha256.Size:]
		d.RunStatus = ""
		switch {
		case w.upd != nil && d.RunSHA256 != "":
			d.RunStatus = string(sc.Run.Status)
		case d.RunSHA256 != "":
			// The status the kept record holds, whatever sc.Run says.
			d.RunStatus = string(sc.RunRecord.status)
		}
		var err error
		if draft, err = prepareDraft(d); err != nil {
			return nil, fmt.Errorf("commit step %q/%d: %w", id, sc.Index, err)
		}
		w.sealed = true
	}
	// The step's key, its predecessor's, the step's own copy of the
	// record, the step log's scratch and the sealer's bytes share one
	// allocation.
	keys := 2*(len(id)+9) + len(sc.Step) + stepLogScratch
	sealCap := 0
	if w.sealed {
		sealCap = sealerCap(&draft)
	}
	buf := make([]byte, 0, keys+sealCap)
	buf = binary.BigEndian.AppendUint64(append(append(buf, id...), 0), uint64(sc.Index))
	w.key = buf[:len(buf):len(buf)]
	if w.upd != nil {
		w.upd.key = w.key[:len(id):len(id)]
	}
	if sc.Index > 0 {
		n := len(buf)
		buf = binary.BigEndian.AppendUint64(append(append(buf, id...), 0), uint64(sc.Index-1))
		w.prevKey = buf[n:len(buf):len(buf)]
	}
	n := len(buf)
	buf = append(buf, sc.Step...)
	w.step = buf[n:len(buf):len(buf)]
	w.logScratch = buf[len(buf) : len(buf)+stepLogScratch : len(buf)+stepLogScratch]
	if w.sealed {
		if err := w.seal.init(draft, buf[keys:keys:keys+sealCap]); err != nil {
			return nil, fmt.Errorf("commit step %q/%d: %w", id, sc.Index, err)
		}
	}
	return w, nil
}

// write is the step's write function, run inside the transaction (again
// if the batch is re-run).
func (w *stepWrite) write(tx *bolt.Tx) error {
	w.env = nil
	steps := tx.Bucket(bucketSteps)
	// One search answers both: the key itself, and the one before.
	c := steps.Cursor()
	k, _ := c.Seek(w.key)
	if k != nil && bytes.Equal(k, w.key) {
		return ErrStepExists
	}
	if w.prevKey != nil {
		if k, _ = c.Prev(); k == nil || !bytes.Equal(k, w.prevKey) {
			return ErrStepGap
		}
	}
	if err := w.db.putStep(tx, w.key, w.step, w.logScratch); err != nil {
		return err
	}
	var s *sealer
	if w.sealed {
		s = &w.seal
	}
	if w.upd == nil {
		v := tx.Bucket(bucketRuns).Get([]byte(w.id))
		if v == nil {
			return fmt.Errorf("run: %w", ErrNotFound)
		}
		if s != nil && w.runRecord != nil && !bytes.Equal(v, w.runRecord) {
			// Rewritten since the caller learnt its bytes: commit
			// to the record as it is now.
			var k runKeys
			if !readRunKeys(v, &k) {
				var err error
				if k, err = decodeRunKeys(v); err != nil {
					return err
				}
			}
			d := w.seal.d
			d.RunSHA256, d.RunStatus = RecordSHA256(v), string(k.Status)
			var err error
			if s, err = newSealer(d); err != nil {
				return err
			}
		}
	} else {
		v, err := w.upd.apply(tx)
		if err != nil {
			return err
		}
		if s != nil && v != nil && (w.upd.v == nil || &v[0] != &w.upd.v[0]) {
			// putRun wrote the record: seal its bytes
			// (rare: a record created by its first step, say).
			d := w.seal.d
			d.RunSHA256, d.RunStatus = RecordSHA256(v), string(w.status)
			if s, err = newSealer(d); err != nil {
				return err
			}
		}
	}
	if s == nil {
		return nil
	}
	e, err := w.db.appendEnvelope(tx, s)
	if err != nil {
		return err
	}
	if s == &w.seal {
		w.seal.d = e
		w.env = &w.seal.d
	} else {
		w.env = new(Envelope)
		*w.env = e
	}
	return nil
}

// runUpdate is a step's rewrite of its run's record, encoded ahead
// of the transaction. The common case (the record exists, was created at
// the CreatedAt the caller holds, for the same program, and the body is
// unchanged) needs no decoding of the stored record beyond three fields
// and touches the index buckets only when the run leaves or enters the
// unfinished set. Anything else takes putRun's general path.
type runUpdate struct {
	e   Run
	now time.Time
	v   []byte // e encoded, when the fast path may apply
	// key is the record's key (e.ID), when prepareStep set it: the
	// step key's prefix, so the committer does not convert the id again.
	key []byte
}

func prepareUpdate(e Run, now time.Time) (*runUpdate, error) {
	u := &runUpdate{e: e, now: now}
	if e.CreatedAt.IsZero() || len(e.Input) > 0 || len(e.Program) > 0 {
		return u, nil
	}
	rec := e
	rec.CreatedAt = e.CreatedAt.UTC()
	rec.UpdatedAt = now
	v, err := encodeRun(&rec)
	if err != nil {
		return nil, err
	}
	u.v = v
	return u, nil
}

// runKeys are the stored fields a run's index keys derive from.
type runKeys struct {
	ProgramID string        `json:"program_id"`
	Status    kernel.Status `json:"status"`
	CreatedAt time.Time     `json:"created_at"`
}

// apply writes the record and returns its stored bytes (u.v itself on the
// fast path).
func (u *runUpdate) apply(tx *bolt.Tx) ([]byte, error) {
	if u.v == nil {
		_, v, err := putRun(tx, u.e, u.now)
		return v, err
	}
	b := tx.Bucket(bucketRuns)
	old := b.Get([]byte(u.e.ID))
	if old == nil {
		_, v, err := putRun(tx, u.e, u.now)
		return v, err
	}
	var prev runKeys
	if !readRunKeys(old, &prev) {
		var err error
		if prev, err = decodeRunKeys(old); err != nil {
			return nil, err
		}
	}
	if !prev.CreatedAt.Equal(u.e.CreatedAt) || prev.ProgramID != u.e.ProgramID {
		_, v, err := putRun(tx, u.e, u.now)
		return v, err
	}
	key := u.key
	if key == nil {
		key = []byte(u.e.ID)
	}
	if err := put(tx, bucketRuns, key, u.v); err != nil {
		return nil, err
	}
	was, is := unfinished(prev.Status), unfinished(u.e.Status)
	if was == is {
		return u.v, nil
	}
	tk := timeKey(prev.CreatedAt, u.e.ID)
	if is {
		return u.v, put(tx, bucketRunOpen, tk, nil)
	}
	return u.v, del(tx, bucketRunOpen, tk)
}

// decodeRunKeys is readRunKeys through encoding/json, into a variable of
// its own: decoding makes its target escape, which apply's should not.
func decodeRunKeys(v []byte) (runKeys, error) {
	var k runKeys
	err := decodeRecord(v, &k)
	return k, err
}

// Steps implements RunStore.
func (db *DB) Steps(ctx context.Context, traceID string, offset, limit int) ([]Step, error) {
	var out []Step
	err := db.view(ctx, func(tx *bolt.Tx) error {
		prefix := append([]byte(traceID), 0)
		c := tx.Bucket(bucketSteps).Cursor()
		for k, v := c.Seek(joinKey(traceID, uint64(max(offset, 0)))); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // not a step key (see badStepKeys)
			}
			if limit > 0 && len(out) == limit {
				break
			}
			rec := stepRecord(tx, v)
			if rec == nil {
				continue // a reference to a log record that is gone
			}
			out = append(out, Step{
				Index: int(binary.BigEndian.Uint64(k[len(prefix):])),
				Data:  bytes.Clone(rec),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("steps of %q: %w", traceID, err)
	}
	return out, nil
}
