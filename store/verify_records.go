package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
)

// The records a trace shows, as RecordProblem.Record names them.
const (
	// RecordStep is a step record (bucket steps).
	RecordStep = "step"
	// RecordRun is a run's record: status, header (final
	// output, error, metrics), program name and hash. Its value keeps the
	// older word, as the envelope field it is checked against does
	// (execution_sha256).
	RecordRun = "execution"
	// RecordInput is a run's input.
	RecordInput = "input"
	// RecordProgram is the program a run executed.
	RecordProgram = "program"
	// RecordSecret is a secret's vault record, as far as its erasure goes
	// (whether traces show it tombstoned); TraceID is empty and the
	// reason names the secret.
	RecordSecret = "secret"
)

// maxRecordProblems caps the record problems (and, apart, the notes) a
// report lists; RecordsOmitted counts the rest.
const maxRecordProblems = 100

// RecordProblem is a stored record that does not match the envelope that
// commits to it, or that no envelope commits to.
type RecordProblem struct {
	// TraceID is the run the record belongs to. It is written as
	// "trace_id" and, for one release, also as the deprecated
	// "execution_id" (see MarshalJSON).
	TraceID string `json:"trace_id"`
	// Record is RecordStep, RecordRun, RecordInput or RecordProgram.
	Record string `json:"record"`
	// StepIndex is the step's index, for a RecordStep.
	StepIndex *int `json:"step_index,omitempty"`
	// Seq is the envelope that commits to the record, 0 when none does.
	Seq uint64 `json:"seq,omitempty"`
	// Problem is ProblemRecordChanged, ProblemRecordMissing,
	// ProblemRecordExtra, or, for a note, ProblemLegacy or
	// ProblemUncovered.
	Problem Problem `json:"problem"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
}

// MarshalJSON writes the problem with its run's id under both "trace_id"
// and the deprecated "execution_id", which clients of earlier releases
// read. Deprecated: "execution_id" goes in the next release.
func (p RecordProblem) MarshalJSON() ([]byte, error) {
	type plain RecordProblem
	return json.Marshal(struct {
		plain
		TraceID string `json:"execution_id"`
	}{plain(p), p.TraceID})
}

// UnmarshalJSON reads what MarshalJSON writes; a problem written with only
// the deprecated "execution_id" (by an earlier release) is read too.
func (p *RecordProblem) UnmarshalJSON(b []byte) error {
	type plain RecordProblem
	var v struct {
		plain
		LegacyID string `json:"execution_id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = RecordProblem(v.plain)
	if p.TraceID == "" {
		p.TraceID = v.LegacyID
	}
	return nil
}

// String describes the problem with the record it names, e.g.
// `trace "7f0c" step 3: record changed: …`.
func (p RecordProblem) String() string {
	if p.Record == RecordSecret {
		return fmt.Sprintf("%s: %s", p.Problem, p.Reason)
	}
	what := p.Record
	if p.StepIndex != nil {
		what = fmt.Sprintf("step %d", *p.StepIndex)
	}
	return fmt.Sprintf("trace %q %s: %s: %s", p.TraceID, what, p.Problem, p.Reason)
}

// commitment is the latest envelope committing to a record. The hash is
// kept decoded (a whole-chain check holds one per envelope): valid is
// false when the envelope's hex is not a SHA-256, which no record matches.
type commitment struct {
	seq    uint64
	sum    [sha256.Size]byte
	valid  bool
	hashed bool // the envelope carries a hash at all (schema 2)
}

func commit(seq uint64, hexSum string) commitment {
	c := commitment{seq: seq, hashed: hexSum != ""}
	if len(hexSum) == 2*sha256.Size {
		_, err := hex.Decode(c.sum[:], []byte(hexSum))
		c.valid = err == nil
	}
	return c
}

// matches reports whether v hashes to the commitment.
func (c commitment) matches(v []byte) bool { return c.valid && sha256.Sum256(v) == c.sum }

// cover is what a run's envelopes commit to.
type cover struct {
	any     bool // an envelope of this run was seen
	steps   map[int]commitment
	exec    commitment
	input   commitment
	program commitment
	deleted bool
	// recommits are later envelopes committing anew to a record that is
	// committed once: a step, the input, the program. No writer makes
	// them; appending one is how a changed record would be re-sealed
	// without rewriting the chain (a checkpoint cannot see an append).
	// The first commitments (once*) outlive a deletion envelope, which an
	// append could otherwise use to start the run afresh.
	recommits              []RecordProblem
	onceSteps              map[int]uint64
	onceInput, onceProgram commitment
	// ended is the envelope that committed to the run record with a
	// terminal status (Envelope.RunStatus), 0 before; endStatus is that
	// status. No writer commits to a run after its end, so every later
	// envelope of the run but a deletion is a re-seal. Like the once*
	// commitments, it outlives a deletion.
	ended     uint64
	endStatus string
}

// afterEnd notes that e, an envelope of a run that ended, commits to it
// again.
func (c *cover) afterEnd(e *Envelope) {
	if len(c.recommits) >= maxRecordProblems {
		return
	}
	p := RecordProblem{TraceID: e.TraceID, Record: RecordRun, Seq: e.Seq, Problem: ProblemRecordChanged,
		Reason: fmt.Sprintf("envelope seq %d commits to the run record after envelope seq %d sealed the run's end (status %s): a finished run's record is committed once", e.Seq, c.ended, c.endStatus)}
	if e.RunSHA256 == "" && e.Kind == EnvelopeKindStep {
		i := e.StepIndex
		p.Record, p.StepIndex = RecordStep, &i
		p.Reason = fmt.Sprintf("envelope seq %d commits to step %d after envelope seq %d sealed the run's end (status %s): a finished run takes no more steps", e.Seq, i, c.ended, c.endStatus)
	}
	c.recommits = append(c.recommits, p)
}

// recommit notes that e commits again, with a different hash, to a record
// first committed by envelope first.
func (c *cover) recommit(e *Envelope, what string, step *int, first uint64) {
	if len(c.recommits) >= maxRecordProblems {
		return
	}
	c.recommits = append(c.recommits, RecordProblem{TraceID: e.TraceID, Record: what, StepIndex: step, Seq: e.Seq,
		Problem: ProblemRecordChanged,
		Reason:  fmt.Sprintf("envelope seq %d commits anew to the %s that envelope seq %d committed to: it is committed once", e.Seq, what, first)})
}

// add takes in one envelope of the run, in seq order.
func (c *cover) add(e *Envelope) {
	ended, n := c.ended, len(c.recommits)
	c.take(e)
	if ended != 0 && e.Kind != EnvelopeKindDelete && len(c.recommits) == n {
		// Reported once: a re-commitment of a step, the input or the
		// program after the end says it already.
		c.afterEnd(e)
	}
}

// take records what e commits to.
func (c *cover) take(e *Envelope) {
	c.any = true
	switch e.Kind {
	case EnvelopeKindDelete:
		*c = cover{any: true, deleted: true, recommits: c.recommits,
			onceSteps: c.onceSteps, onceInput: c.onceInput, onceProgram: c.onceProgram,
			ended: c.ended, endStatus: c.endStatus}
		return
	case EnvelopeKindStep:
		if c.steps == nil {
			c.steps = map[int]commitment{}
		}
		cm := commit(e.Seq, e.RecordSHA256)
		if cm.hashed {
			if first, ok := c.onceSteps[e.StepIndex]; ok {
				i := e.StepIndex
				c.recommit(e, RecordStep, &i, first)
			} else {
				if c.onceSteps == nil {
					c.onceSteps = map[int]uint64{}
				}
				c.onceSteps[e.StepIndex] = e.Seq
			}
		}
		c.steps[e.StepIndex] = cm
	}
	c.deleted = false
	if e.RunSHA256 != "" {
		c.exec = commit(e.Seq, e.RunSHA256)
		if c.ended == 0 && kernel.Status(e.RunStatus).Terminal() {
			c.ended, c.endStatus = e.Seq, e.RunStatus
		}
	}
	if e.InputSHA256 != "" {
		c.input = c.once(e, RecordInput, &c.onceInput, e.InputSHA256)
	}
	if e.ProgramSHA256 != "" {
		c.program = c.once(e, RecordProgram, &c.onceProgram, e.ProgramSHA256)
	}
}

// once returns e's commitment to a record committed once, noting a
// recommit when an earlier envelope committed to other bytes.
func (c *cover) once(e *Envelope, what string, first *commitment, hexSum string) commitment {
	cm := commit(e.Seq, hexSum)
	switch {
	case !first.hashed:
		*first = cm
	case cm.sum != first.sum || !cm.valid:
		c.recommit(e, what, nil, first.seq)
	}
	return cm
}

// RecordSource is what the record check of VerifyChain reads from a
// backend, within one consistent snapshot: the bbolt store reads a read
// transaction, another backend (PostgreSQL) a repeatable-read one. Every
// method reports absence as a nil or empty result, not as an error.
type RecordSource interface {
	// RunRecord returns an execution's stored record (without its
	// input, program and checkpoint), nil when none is stored.
	RunRecord(id string) ([]byte, error)
	// RunBody returns the execution's input and program as stored;
	// present reports whether any of input, program or checkpoint is.
	RunBody(id string) (input, program []byte, present bool, err error)
	// StepRecords returns the execution's stored steps in index order.
	StepRecords(id string) ([]Step, error)
	// BadStepKeys counts step records stored under a key that names no
	// step index (0 where keys cannot be malformed).
	BadStepKeys(id string) int
	// Legacy reports whether the execution predates record hashes
	// (schema 1 of the bbolt file; never for a newer backend).
	Legacy(id string) bool
	// TraceIDs lists every execution id any stored record names.
	TraceIDs() ([]string, error)
	// EachSecret calls fn with every stored secret record that decodes.
	EachSecret(fn func(SecretRecord)) error
}

// recordCheck re-hashes the records of executions against their covers.
type recordCheck struct {
	src     RecordSource
	err     error // the first error reading the source
	checked int
	probs   []RecordProblem
	notes   []RecordProblem
	omitted int
}

func (rc *recordCheck) report(p RecordProblem) {
	if len(rc.probs) < maxRecordProblems {
		rc.probs = append(rc.probs, p)
	} else {
		rc.omitted++
	}
}

func (rc *recordCheck) note(p RecordProblem) {
	if len(rc.notes) < maxRecordProblems {
		rc.notes = append(rc.notes, p)
	}
}

func stepProblem(id string, index int, seq uint64, p Problem, format string, args ...any) RecordProblem {
	i := index
	return RecordProblem{TraceID: id, Record: RecordStep, StepIndex: &i, Seq: seq, Problem: p, Reason: fmt.Sprintf(format, args...)}
}

// check compares one run's stored records with c.
func (rc *recordCheck) check(id string, c *cover) {
	src := rc.src
	rec, err := src.RunRecord(id)
	if err != nil {
		rc.fail(err)
		return
	}
	input, program, body, bodyErr := src.RunBody(id)
	steps, err := src.StepRecords(id)
	if err != nil {
		rc.fail(err)
		return
	}
	for _, p := range c.recommits {
		rc.report(p)
	}
	if n := src.BadStepKeys(id); n > 0 {
		rc.report(RecordProblem{TraceID: id, Record: RecordStep, Problem: ProblemRecordExtra,
			Reason: fmt.Sprintf("%d step record(s) under a key that is not the id, a NUL and an 8-byte index: no envelope covers them", n)})
	}
	has := rec != nil || body || len(steps) > 0
	// The legacy marker lies outside the chain: it only exempts the
	// records no envelope carries a hash for, never one an envelope
	// commits to (else one key in legacy_execs would hide any change).
	legacy := src.Legacy(id)
	if legacy {
		if !has {
			return
		}
		rc.note(RecordProblem{TraceID: id, Record: RecordRun, Problem: ProblemLegacy,
			Reason: "written before schema 2: the records its envelopes carry no hash for are not checked"})
		if c.deleted || !c.any {
			return
		}
	}
	if !has {
		if c.any && !c.deleted {
			rc.report(RecordProblem{TraceID: id, Record: RecordRun, Seq: c.exec.seq, Problem: ProblemRecordMissing,
				Reason: "the run's envelopes remain but its records are gone, with no deletion recorded"})
		}
		return
	}
	if c.deleted || !c.any {
		why := "no envelope commits to it"
		if c.deleted {
			why = "the run was recorded as deleted"
		}
		if !c.any && rec != nil && len(steps) == 0 {
			var k runKeys
			if readRunKeys(rec, &k) && k.Status == kernel.StatusRunning {
				// Started, first step not committed yet (or a crash
				// came first): the first step's envelope will cover it.
				rc.note(RecordProblem{TraceID: id, Record: RecordRun, Problem: ProblemUncovered,
					Reason: "a run still running with no step committed yet: no envelope covers its records"})
				return
			}
		}
		if rec != nil {
			rc.report(RecordProblem{TraceID: id, Record: RecordRun, Problem: ProblemRecordExtra, Reason: why})
		}
		if body {
			rc.report(RecordProblem{TraceID: id, Record: RecordInput, Problem: ProblemRecordExtra, Reason: why + " (input and program)"})
		}
		for _, s := range steps {
			rc.report(stepProblem(id, s.Index, 0, ProblemRecordExtra, "%s", why))
		}
		return
	}
	rc.checkOne(id, RecordRun, c.exec, rec, rec != nil, legacy)
	if body && bodyErr != nil {
		rc.report(RecordProblem{TraceID: id, Record: RecordInput, Seq: c.input.seq, Problem: ProblemRecordChanged,
			Reason: "the stored input and program cannot be read: " + bodyErr.Error()})
	} else {
		rc.checkOne(id, RecordInput, c.input, input, len(input) > 0, legacy)
		rc.checkOne(id, RecordProgram, c.program, program, len(program) > 0, legacy)
	}
	for _, s := range steps {
		cm, ok := c.steps[s.Index]
		if legacy && !cm.hashed {
			delete(c.steps, s.Index)
			continue
		}
		rc.checked++
		switch {
		case !ok:
			rc.report(stepProblem(id, s.Index, 0, ProblemRecordExtra, "no envelope commits to step %d", s.Index))
		case !cm.matches(s.Data):
			rc.report(stepProblem(id, s.Index, cm.seq, ProblemRecordChanged, "the stored bytes do not hash to the record_sha256 of envelope seq %d", cm.seq))
		}
		delete(c.steps, s.Index)
	}
	missing := make([]int, 0, len(c.steps))
	for i := range c.steps {
		missing = append(missing, i)
	}
	sort.Ints(missing)
	for _, i := range missing {
		if legacy && !c.steps[i].hashed {
			continue
		}
		rc.report(stepProblem(id, i, c.steps[i].seq, ProblemRecordMissing, "envelope seq %d commits to step %d, which is not stored", c.steps[i].seq, i))
	}
}

// checkOne compares a single record with its commitment.
// For a legacy run, a record no envelope carries a hash for is skipped.
func (rc *recordCheck) checkOne(id, what string, cm commitment, v []byte, present, legacy bool) {
	switch {
	case cm.seq == 0 && (!present || legacy):
	case cm.seq == 0:
		rc.checked++
		rc.report(RecordProblem{TraceID: id, Record: what, Problem: ProblemRecordExtra, Reason: "no envelope commits to the " + what})
	case !present:
		rc.report(RecordProblem{TraceID: id, Record: what, Seq: cm.seq, Problem: ProblemRecordMissing,
			Reason: fmt.Sprintf("envelope seq %d commits to the %s, which is not stored", cm.seq, what)})
	default:
		rc.checked++
		if !cm.matches(v) {
			rc.report(RecordProblem{TraceID: id, Record: what, Seq: cm.seq, Problem: ProblemRecordChanged,
				Reason: fmt.Sprintf("the stored %s does not hash to the %s_sha256 of envelope seq %d", what, what, cm.seq)})
		}
	}
}

// apply copies the findings into rep; any record problem makes it not OK.
func (rc *recordCheck) apply(rep *VerifyReport) {
	rep.RecordsChecked = rc.checked
	rep.Records = rc.probs
	rep.RecordsOmitted = rc.omitted
	rep.Notes = rc.notes
	// The head stays when only records fail: the chain itself holds, and
	// a checkpoint can still be compared with it.
	if len(rc.probs) > 0 {
		rep.OK = false
	}
}

// decodeCover decodes a stored envelope for the record check only: an
// undecodable one is the chain check's to report.
func decodeCover(v []byte) (Envelope, bool) {
	var e Envelope
	return e, json.Unmarshal(v, &e) == nil
}

// checkErasures holds the vault's tombstones to the erase envelopes: a
// secret an erase envelope records (by its public ref) must still be
// tombstoned, else traces show its ref again as if it had never been
// erased. A tombstone without an envelope is only noted: erasure stores
// the tombstone first and appends the envelope after, so a crash between
// the two leaves one.
func (rc *recordCheck) checkErasures(erased map[string]uint64) {
	rc.fail(rc.src.EachSecret(func(s SecretRecord) {
		seq, ok := erased[projection.PublicRef(s.ID, s.Salt, false)]
		switch {
		case ok && !s.Tombstoned:
			rc.checked++
			rc.report(RecordProblem{Record: RecordSecret, Seq: seq, Problem: ProblemRecordChanged,
				Reason: fmt.Sprintf("secret %s: erase envelope seq %d records its erasure, but its vault record is not tombstoned", Clip(s.ID), seq)})
		case ok:
			rc.checked++
		case s.Tombstoned:
			rc.note(RecordProblem{Record: RecordSecret, Problem: ProblemUncovered,
				Reason: fmt.Sprintf("secret %s is tombstoned but no erase envelope records it (an erasure interrupted before its envelope?)", Clip(s.ID))})
		}
	}))
}

// fail keeps the first error reading the source: the check could not run.
func (rc *recordCheck) fail(err error) {
	if err != nil && rc.err == nil {
		rc.err = err
	}
}
