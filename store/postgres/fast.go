package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanovm/nano-vm-mcp/store"
)

// The one-round-trip batch. A batch whose every member is a fenced step of
// a run this committer knows (it made the run's last commits under the
// same lease, so it knows the next index and the record's creation time),
// a lease to acquire or a lease to give up needs nothing read before its
// writes: the committer links its envelopes to the head its last batch
// left and sends the whole transaction at once:
//
//	BEGIN
//	SELECT … FROM nanovm_chain_head … FOR UPDATE       the head, first, as always
//	SELECT 1 / count(*) … WHERE seq = $1 AND hash = $2 aborts unless it is the head linked to
//	acquire the leases, record the new runs           (one statement, its outcomes returned)
//	SELECT 1 / (count(*) = n) … JOIN nanovm_leases …  aborts unless every step's lease holds
//	the writes of a two-trip batch (writeSet)
//	COMMIT
//
// The database still decides everything: the head condition refuses a
// batch linked to a head that is not the committed one (another writer
// appended), the lease check is read under the head as in a two-trip
// batch (every lease write holds the head, so it cannot change before
// COMMIT), and the steps' primary key refuses an index taken. A batch that
// a statement before COMMIT refused wrote nothing; it runs again as a
// two-trip batch, which gives each member its own outcome, what the
// committer knew of its runs and of the head is forgotten, and after a
// head another writer moved the next fastPause batches take two trips.
//
// A one-trip batch is sent only when no batch is in flight: its members'
// state and its head are then what committed. (Sending it behind the batch
// in flight was measured: the batch in flight's members come back after
// the next one was gathered, so each request waited one batch more, and
// the next batch locked the head first often enough to be refused; see
// docs/performance.md.)

// runState is what the committer knows of a run from its own commits.
type runState struct {
	lease store.Lease
	// next is the run's first free step index, -1 when unknown.
	next int
	// created is the record's creation time (ns), when hasCreated.
	created    int64
	hasCreated bool
}

// headState is a chain head (seq, hash), when known.
type headState struct {
	seq   uint64
	hash  string
	known bool
}

// maxKnown bounds the runs the committer remembers (forgetting one costs
// a two-trip batch, nothing else).
const maxKnown = 1 << 14

// fastPause is how many batches take two trips after a one-trip batch
// failed.
const fastPause = 8

// maxInFlight is how many two-trip batches may be sent and not yet
// finished: one committing, one waiting on the head behind it.
const maxInFlight = 2

// learn records what the committer knows of run id (db.cmu held).
func (db *DB) learnLocked(id string, st runState) {
	if len(db.known) >= maxKnown {
		clear(db.known)
	}
	db.known[id] = st
}

// learnSlow records what a committed two-trip batch wrote and read: the
// head it left, each fenced step's next index, each acquired lease.
func (db *DB) learnSlow(batch []*stepReq, errs []error, created map[string]int64, next map[string]int, seq uint64, hash string) {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	db.head = headState{seq: seq, hash: hash, known: true}
	for i, r := range batch {
		id := r.sc.Run.ID
		if errs[i] != nil {
			delete(db.known, id)
			continue
		}
		switch r.kind {
		case kindAcquire:
			ns, ok := created[id]
			db.learnLocked(id, runState{lease: r.lease, next: next[id], created: ns, hasCreated: ok})
		case kindRelease:
			delete(db.known, id)
		case kindStep:
			if r.sc.Lease == nil || r.ends() {
				delete(db.known, id)
				continue
			}
			ns, ok := created[id]
			db.learnLocked(id, runState{lease: *r.sc.Lease, next: next[id], created: ns, hasCreated: ok})
		}
	}
}

// forgetHead forgets the head: another transaction of this replica moves
// it.
func (db *DB) forgetHead() {
	db.cmu.Lock()
	db.head.known = false
	db.cmu.Unlock()
}

// batchFailed forgets what the committer knew of batch's runs and of the
// head; pause asks for fastPause two-trip batches (the head was moved by
// another writer).
func (db *DB) batchFailed(batch []*stepReq, pause bool) {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	for _, r := range batch {
		delete(db.known, r.sc.Run.ID)
	}
	db.head.known = false
	if pause {
		db.pause = true
	}
}

// flight is a two-trip batch sent and not yet finished; done is closed
// once its members are completed.
type flight struct {
	done chan struct{}
}

func (f *flight) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// commitLoop gathers what is queued into batches and sends them, each
// completed in order after the one before it. A one-trip batch waits for
// the batches in flight and is built on what they committed; the loop
// reads its outcome itself and wakes its members only once the next batch
// is sent (or nothing is queued), so that the head does not wait for the
// goroutines it wakes. A two-trip batch reads what is committed, and sends
// its first round trip at once behind a two-trip batch committing, as
// before: at most maxInFlight in flight, each finished on a goroutine of
// its own.
func (db *DB) commitLoop() {
	defer close(db.done)
	var inflight []*flight
	var last *flight
	var pending func() // completes the last one-trip batch's members
	slow := 0
	waitAll := func() {
		for _, f := range inflight {
			<-f.done
		}
		inflight = inflight[:0]
	}
	wake := func() {
		if pending != nil {
			pending()
			pending = nil
		}
	}
	push := func(finish func()) {
		f := &flight{done: make(chan struct{})}
		prev := last
		go func() {
			if prev != nil {
				<-prev.done
			}
			finish()
			close(f.done)
		}()
		inflight = append(inflight, f)
		last = f
	}
	for {
		var r *stepReq
		var ok bool
		select {
		case r, ok = <-db.queue:
		default:
			wake()
			r, ok = <-db.queue
		}
		if !ok {
			break
		}
		batch := append(make([]*stepReq, 0, min(db.maxBatch, 2*len(db.queue)+1)), r)
	gather:
		for len(batch) < db.maxBatch {
			select {
			case r, ok := <-db.queue:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		for len(inflight) > 0 && (len(inflight) >= maxInFlight || inflight[0].finished()) {
			<-inflight[0].done
			inflight = inflight[1:]
		}
		db.cmu.Lock()
		if db.pause {
			db.pause, slow = false, fastPause
		}
		db.cmu.Unlock()
		if slow == 0 {
			p := db.planFast(batch, func() headState {
				waitAll()
				db.cmu.Lock()
				defer db.cmu.Unlock()
				return db.head
			})
			if p != nil {
				wait := db.sendFast(p)
				wake()
				pending = db.settleFast(p, wait)
				continue
			}
		} else {
			slow--
		}
		wake()
		finish, _ := db.runBatch(batch)
		push(finish)
	}
	wake()
	waitAll()
}

// fastPlan is a one-trip batch, built.
type fastPlan struct {
	batch  []*stepReq
	outs   []*store.Envelope
	errs   []error
	w      *pgx.Batch
	expect headState
	leave  headState
	// acqAt is the statement index of the acquisitions (-1 without);
	// acq the members acquiring, in the order of the statement's ids.
	acqAt int
	acq   []int
	// ids are the batch's runs (forgotten when it fails).
	ids []string
}

// planFast builds batch as one trip, or returns nil when it cannot be (a
// member needs something read first, or the head is not known). ready
// waits for the batches in flight and returns the head they left; it is
// called only for a batch that can be one trip.
func (db *DB) planFast(batch []*stepReq, ready func() headState) *fastPlan {
	if !db.fastCandidate(batch) {
		return nil
	}
	tip := ready()
	if !tip.known {
		return nil
	}
	return db.planOn(batch, tip)
}

// fastCandidate reports whether every member of batch is one a one-trip
// batch can carry, by what the committer knows now (planOn checks again
// once the batches in flight have finished).
func (db *DB) fastCandidate(batch []*stepReq) bool {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	next := map[string]int{}
	acq := map[string]bool{}
	for _, r := range batch {
		sc := &r.sc
		id := sc.Run.ID
		switch r.kind {
		case kindAcquire:
			if acq[id] {
				return false
			}
			acq[id] = true
			continue
		case kindRelease:
			next[id] = -1
			continue
		}
		st, ok := db.known[id]
		n, seen := next[id]
		if !seen {
			n = st.next
		}
		if sc.Lease == nil || acq[id] || !ok || n < 0 || st.lease != *sc.Lease || n != sc.Index ||
			(r.ends() && sc.Run.IdempotencyKey != "" && sc.Run.Status.Terminal()) ||
			(!sc.KeepRun && r.rec == nil && !st.hasCreated) {
			return false
		}
		next[id] = sc.Index + 1
		if r.ends() {
			next[id] = -1
		}
	}
	return true
}

// planOn builds batch as one trip linked to the head tip, or returns nil.
// What it assumes of the runs (each step's index taken) is recorded as
// known at once; a failure forgets it.
func (db *DB) planOn(batch []*stepReq, tip headState) *fastPlan {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	view := map[string]runState{}
	state := func(id string) (runState, bool) {
		if st, ok := view[id]; ok {
			return st, st.next >= 0
		}
		st, ok := db.known[id]
		return st, ok && st.next >= 0
	}
	now := db.now().UTC()
	ws := &writeSet{}
	var acqIDs, acqOwners, xIDs, xPids, xSts []string
	var xCns []int64
	var xRecs, xIns, xProgs [][]byte
	var acq []int
	acqSeen := map[string]bool{}
	stepSeen := map[string]bool{}
	var lt, lo []string
	var le []int64
	var ids []string
	seen := map[string]bool{}
	seq, hash := tip.seq, tip.hash
	outs := make([]*store.Envelope, len(batch))
	for i, r := range batch {
		sc := &r.sc
		id := sc.Run.ID
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		switch r.kind {
		case kindAcquire:
			if acqSeen[id] || stepSeen[id] {
				return nil
			}
			acqSeen[id] = true
			acq = append(acq, i)
			acqIDs = append(acqIDs, id)
			acqOwners = append(acqOwners, r.owner)
			if r.withRun {
				xIDs = append(xIDs, id)
				xPids = append(xPids, sc.Run.ProgramID)
				xSts = append(xSts, string(sc.Run.Status))
				xCns = append(xCns, r.recAt)
				xRecs = append(xRecs, r.rec)
				xIns = append(xIns, nonEmpty(sc.Run.Input))
				xProgs = append(xProgs, nonEmpty(sc.Run.Program))
			}
			continue
		case kindRelease:
			ws.relIDs = append(ws.relIDs, id)
			ws.relOwners = append(ws.relOwners, r.lease.Owner)
			ws.relEpochs = append(ws.relEpochs, int64(r.lease.Epoch))
			ws.notify = append(ws.notify, id)
			view[id] = runState{next: -1}
			continue
		}
		st, ok := state(id)
		if sc.Lease == nil || acqSeen[id] || !ok || st.lease != *sc.Lease || st.next != sc.Index {
			return nil
		}
		if r.ends() && sc.Run.IdempotencyKey != "" && sc.Run.Status.Terminal() {
			// Finishing the key needs its record read.
			return nil
		}
		stepSeen[id] = true
		var rec []byte
		if !sc.KeepRun {
			rec = r.rec
			at := r.recAt
			if rec == nil {
				if !st.hasCreated {
					return nil
				}
				e := r.updated
				e.CreatedAt = timeOf(st.created)
				v, err := store.EncodeRun(&e)
				if err != nil {
					return nil
				}
				rec, at = v, st.created
			}
			ws.putExec(id, &sc.Run, at, rec)
			ws.putBody(id, sc.Run.Input, sc.Run.Program)
			st.created, st.hasCreated = at, true
		}
		if r.hasEnv {
			s := r.seal
			if rec != nil && r.rec == nil {
				d := r.draft
				d.RunSHA256, d.RunStatus = store.RecordSHA256(rec), string(sc.Run.Status)
				var err error
				if s, err = store.PrepareEnvelope(d); err != nil {
					return nil
				}
			}
			env, v, err := s.Link(seq, hash, now)
			if err != nil {
				return nil
			}
			seq, hash = env.Seq, env.Hash
			ws.eSeq = append(ws.eSeq, int64(env.Seq))
			ws.eIDs = append(ws.eIDs, env.TraceID)
			ws.eVals = append(ws.eVals, v)
			outs[i] = &env
		}
		lt = append(lt, id)
		lo = append(lo, sc.Lease.Owner)
		le = append(le, int64(sc.Lease.Epoch))
		ws.addStep(r)
		st.next = sc.Index + 1
		if r.ends() {
			st.next = -1
		}
		view[id] = st
	}
	ws.seq, ws.hash = seq, hash

	w := &pgx.Batch{}
	w.Queue(`BEGIN`)
	w.Queue(`SELECT seq FROM nanovm_chain_head WHERE id = 1 FOR UPDATE`)
	// The head condition: this batch's envelopes link to tip, so it
	// commits only on tip (a batch it was built on that failed, or
	// another writer's append, aborts it here).
	w.Queue(`SELECT 1 / count(*) FROM nanovm_chain_head WHERE id = 1 AND seq = $1 AND hash = $2`, int64(tip.seq), tip.hash)
	acqAt := -1
	if len(acqIDs) > 0 {
		acqAt = w.Len()
		w.Queue(`WITH a AS (INSERT INTO nanovm_leases AS l (trace_id, owner, epoch, released)
SELECT t, o, 1, false FROM unnest($1::text[], $2::text[]) AS u(t, o)
ON CONFLICT (trace_id) DO UPDATE SET owner = EXCLUDED.owner, epoch = l.epoch + 1, released = false
WHERE l.released OR l.owner = EXCLUDED.owner
   OR NOT EXISTS (SELECT 1 FROM nanovm_replicas r WHERE r.id = l.owner AND r.expires_at > clock_timestamp())
RETURNING trace_id, epoch),
x AS (INSERT INTO nanovm_executions (id, program_id, status, created_ns, record)
SELECT u.id, u.p, u.s, u.c, u.r FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[]) AS u(id, p, s, c, r) JOIN a ON a.trace_id = u.id
ON CONFLICT (id) DO NOTHING RETURNING id),
b AS (INSERT INTO nanovm_exec_bodies (id, input, program)
SELECT u.id, u.i, u.g FROM unnest($3::text[], $8::bytea[], $9::bytea[]) AS u(id, i, g) JOIN x ON x.id = u.id
WHERE u.i IS NOT NULL OR u.g IS NOT NULL
ON CONFLICT (id) DO UPDATE SET input = COALESCE(EXCLUDED.input, nanovm_exec_bodies.input),
  program = COALESCE(EXCLUDED.program, nanovm_exec_bodies.program))
SELECT u.t, a.epoch, l.owner, l.epoch, x.id IS NOT NULL FROM unnest($1::text[]) AS u(t)
LEFT JOIN a ON a.trace_id = u.t LEFT JOIN x ON x.id = u.t LEFT JOIN nanovm_leases l ON l.trace_id = u.t`,
			acqIDs, acqOwners, xIDs, xPids, xSts, xCns, xRecs, xIns, xProgs)
	}
	if len(lt) > 0 {
		// The fencing, read under the head as in a two-trip batch.
		w.Queue(`SELECT 1 / (count(*) = $4)::int FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, o, e)
JOIN nanovm_leases l ON l.trace_id = u.t AND l.owner = u.o AND l.epoch = u.e`, lt, lo, le, len(lt))
	}
	ws.queue(w)
	w.Queue(`COMMIT`)
	for id, st := range view {
		if st.next < 0 {
			delete(db.known, id)
			continue
		}
		db.learnLocked(id, st)
	}
	return &fastPlan{
		batch: batch, outs: outs, errs: make([]error, len(batch)), w: w,
		expect: tip, leave: headState{seq: seq, hash: hash, known: true},
		acqAt: acqAt, acq: acq, ids: ids,
	}
}

// nonEmpty is b, or nil when empty (NULL: nothing to store).
func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// fastResult is how a one-trip batch ended: err, and whether it failed in
// a statement before COMMIT (so that nothing was written and it may run
// again) and whether that statement was the head condition.
type fastResult struct {
	err          error
	again, moved bool
}

// sendFast sends p's transaction; wait reads its outcome.
func (db *DB) sendFast(p *fastPlan) (wait func() fastResult) {
	ctx := context.Background()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return func() fastResult { return fastResult{err: err} }
	}
	res := conn.SendBatch(ctx, p.w)
	return func() fastResult {
		var err error
		at := 0
		for ; at < p.w.Len(); at++ {
			if at == p.acqAt {
				err = readRows(res, func(rows pgx.Rows) error {
					var id string
					var acquired, epoch *int64
					var owner *string
					var inserted bool
					if err := rows.Scan(&id, &acquired, &owner, &epoch, &inserted); err != nil {
						return err
					}
					for _, i := range p.acq {
						r := p.batch[i]
						if r.sc.Run.ID != id {
							continue
						}
						if acquired != nil {
							r.lease = store.Lease{TraceID: id, Owner: r.owner, Epoch: uint64(*acquired)}
							r.existed = r.withRun && !inserted
						} else {
							l := store.Lease{TraceID: id}
							if owner != nil && epoch != nil {
								l.Owner, l.Epoch = *owner, uint64(*epoch)
							}
							r.lease = l
							p.errs[i] = fmt.Errorf("acquire lease of %q: %w (%s)", id, store.ErrLeaseHeld, l.Owner)
						}
					}
					return nil
				})
			} else {
				_, err = res.Exec()
			}
			if err != nil {
				break
			}
		}
		if cerr := res.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			rollback(conn.Conn())
			conn.Release()
			var pe *pgconn.PgError
			// A statement before COMMIT refused the batch: nothing was
			// written. A failed COMMIT, or a connection lost, may have
			// committed: that is not run again.
			again := errors.As(err, &pe) && at < p.w.Len()-1
			return fastResult{err: err, again: again, moved: again && at == 2}
		}
		conn.Release()
		return fastResult{}
	}
}

// settleFast waits for p's outcome and records what it tells, and returns
// the function that completes p's members with it (nil when they are
// completed already: a batch a statement refused runs again as two trips,
// at once, and that completes them).
func (db *DB) settleFast(p *fastPlan, wait func() fastResult) (complete func()) {
	r := wait()
	if r.err != nil {
		db.batchFailed(p.batch, r.moved)
		if r.again {
			db.fastAgain.Add(1)
			for _, m := range p.batch {
				m.lease, m.existed = leaseOf(m), false
			}
			finish, _ := db.runBatch(p.batch)
			finish()
			return nil
		}
		db.batches.Add(1)
		db.commits.Add(int64(len(p.batch)))
		return func() {
			for _, m := range p.batch {
				m.complete(nil, r.err)
			}
		}
	}
	db.batches.Add(1)
	db.fastBatches.Add(1)
	db.commits.Add(int64(len(p.batch)))
	db.cmu.Lock()
	db.head = p.leave
	for i, m := range p.batch {
		if m.kind == kindAcquire {
			id := m.sc.Run.ID
			if p.errs[i] != nil {
				delete(db.known, id)
				continue
			}
			st := runState{lease: m.lease, next: -1}
			if m.withRun && !m.existed {
				// A run recorded just now has no steps (a step at 0
				// that existed would fail the steps' key, not leave
				// a gap).
				st.next, st.created, st.hasCreated = 0, m.recAt, true
			}
			db.learnLocked(id, st)
		}
	}
	db.cmu.Unlock()
	for i, m := range p.batch {
		if p.errs[i] == nil && m.ends() {
			db.markReleased(*m.sc.Lease)
		}
	}
	return func() {
		for i, m := range p.batch {
			if p.errs[i] != nil {
				m.complete(nil, p.errs[i])
				continue
			}
			m.complete(p.outs[i], nil)
		}
	}
}

// leaseOf is the lease a request carries in (a release's), cleared for an
// acquisition, whose lease is its outcome.
func leaseOf(r *stepReq) store.Lease {
	if r.kind == kindAcquire {
		return store.Lease{}
	}
	return r.lease
}

// writeSet is a batch's writes, checked: built by the checks, queued as
// one multi-row statement per table.
type writeSet struct {
	sIDs              []string
	sIdx              []int32
	sData             [][]byte
	eSeq              []int64
	eIDs              []string
	eVals             [][]byte
	relIDs, relOwners []string
	relEpochs         []int64
	idemOut           []string
	idem              map[string][]byte
	notify            []string
	execRows          map[string]*execRow
	execOrder         []string
	bodies            map[string]*body
	bodyOrder         []string
	seq               uint64
	hash              string
}

// addStep queues r's step and, when it is its run's last write, the
// release of a suspended run's lease (any replica may resume it; a
// finished run keeps its lease, as nothing takes a finished run over,
// which saves the write) and the notification another replica's caller
// of the same idempotency key may wait for.
func (ws *writeSet) addStep(r *stepReq) {
	sc := &r.sc
	id := sc.Run.ID
	ws.sIDs = append(ws.sIDs, id)
	ws.sIdx = append(ws.sIdx, int32(sc.Index))
	ws.sData = append(ws.sData, r.step)
	if !r.ends() {
		return
	}
	if !sc.Run.Status.Terminal() {
		ws.relIDs = append(ws.relIDs, id)
		ws.relOwners = append(ws.relOwners, sc.Lease.Owner)
		ws.relEpochs = append(ws.relEpochs, int64(sc.Lease.Epoch))
	}
	if sc.Run.IdempotencyKey != "" {
		ws.notify = append(ws.notify, id)
	}
}

type execRow struct {
	programID, status string
	createdNS         int64
	rec               []byte
}

type body struct{ input, program []byte }

func (ws *writeSet) putBody(id string, input, program []byte) {
	if len(input) == 0 && len(program) == 0 {
		return
	}
	if ws.bodies == nil {
		ws.bodies = map[string]*body{}
	}
	bd := ws.bodies[id]
	if bd == nil {
		bd = &body{}
		ws.bodies[id] = bd
		ws.bodyOrder = append(ws.bodyOrder, id)
	}
	if len(input) > 0 {
		bd.input = input
	}
	if len(program) > 0 {
		bd.program = program
	}
}

func (ws *writeSet) putExec(id string, run *store.Run, at int64, rec []byte) {
	if ws.execRows == nil {
		ws.execRows = map[string]*execRow{}
	}
	row := ws.execRows[id]
	if row == nil {
		row = &execRow{}
		ws.execRows[id] = row
		ws.execOrder = append(ws.execOrder, id)
	}
	*row = execRow{programID: run.ProgramID, status: string(run.Status), createdNS: at, rec: rec}
}

// queue queues ws's statements on w (COMMIT not included).
func (ws *writeSet) queue(w *pgx.Batch) {
	merged := len(ws.sIDs) > 0 && len(ws.eSeq) > 0
	if merged {
		// The usual case in one statement: steps, their envelopes and
		// the head.
		w.Queue(`WITH s AS (INSERT INTO nanovm_steps (exec_id, idx, data) SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])),
v AS (INSERT INTO nanovm_envelopes (seq, exec_id, value) SELECT * FROM unnest($4::bigint[], $5::text[], $6::bytea[]))
UPDATE nanovm_chain_head SET seq = $7, hash = $8 WHERE id = 1`, ws.sIDs, ws.sIdx, ws.sData, ws.eSeq, ws.eIDs, ws.eVals, int64(ws.seq), ws.hash)
	} else if len(ws.sIDs) > 0 {
		w.Queue(`INSERT INTO nanovm_steps (exec_id, idx, data) SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])`, ws.sIDs, ws.sIdx, ws.sData)
	}
	if len(ws.execOrder) > 0 {
		n := len(ws.execOrder)
		pids, sts, cns, recs := make([]string, n), make([]string, n), make([]int64, n), make([][]byte, n)
		for j, id := range ws.execOrder {
			row := ws.execRows[id]
			pids[j], sts[j], cns[j], recs[j] = row.programID, row.status, row.createdNS, row.rec
		}
		w.Queue(`INSERT INTO nanovm_executions (id, program_id, status, created_ns, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])
ON CONFLICT (id) DO UPDATE SET program_id = EXCLUDED.program_id, status = EXCLUDED.status, created_ns = EXCLUDED.created_ns, record = EXCLUDED.record`,
			ws.execOrder, pids, sts, cns, recs)
	}
	if len(ws.bodyOrder) > 0 {
		n := len(ws.bodyOrder)
		ins, progs := make([][]byte, n), make([][]byte, n)
		for j, id := range ws.bodyOrder {
			bd := ws.bodies[id]
			ins[j], progs[j] = bd.input, bd.program
		}
		w.Queue(`INSERT INTO nanovm_exec_bodies (id, input, program)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
ON CONFLICT (id) DO UPDATE SET input = COALESCE(EXCLUDED.input, nanovm_exec_bodies.input),
  program = COALESCE(EXCLUDED.program, nanovm_exec_bodies.program)`,
			ws.bodyOrder, ins, progs)
	}
	if len(ws.eSeq) > 0 && !merged {
		w.Queue(`INSERT INTO nanovm_envelopes (seq, exec_id, value) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])`, ws.eSeq, ws.eIDs, ws.eVals)
		w.Queue(`UPDATE nanovm_chain_head SET seq = $1, hash = $2 WHERE id = 1`, int64(ws.seq), ws.hash)
	}
	if len(ws.relIDs) > 0 {
		w.Queue(`UPDATE nanovm_leases l SET released = true FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, o, e)
WHERE l.trace_id = u.t AND l.owner = u.o AND l.epoch = u.e`, ws.relIDs, ws.relOwners, ws.relEpochs)
	}
	if len(ws.idemOut) > 0 {
		vals := make([][]byte, len(ws.idemOut))
		for j, k := range ws.idemOut {
			vals[j] = ws.idem[k]
		}
		w.Queue(`UPDATE nanovm_idempotency i SET record = u.r FROM unnest($1::text[], $2::bytea[]) AS u(k, r) WHERE i.key = u.k`, ws.idemOut, vals)
	}
	if len(ws.notify) > 0 {
		w.Queue(`SELECT pg_notify('`+runsChannel+`', t) FROM unnest($1::text[]) AS t`, ws.notify)
	}
}
