package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// RecordChecker holds the stored records of executions to the envelopes
// that commit to them: VerifyChain of every backend feeds it the chain's
// envelopes in seq order and then has it re-hash the records. The zero
// value is ready to use.
type RecordChecker struct {
	covers map[string]*cover
	erased map[string]uint64 // public ref → erase envelope seq
}

// Add takes in one envelope, in seq order (past a broken link too: the
// records are still checked against what the rest of the chain says).
func (k *RecordChecker) Add(e *Envelope) {
	if e.Kind == EnvelopeKindErase {
		var p struct {
			Ref string `json:"ref"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.Ref != "" {
			if k.erased == nil {
				k.erased = map[string]uint64{}
			}
			k.erased[p.Ref] = e.Seq
		}
	}
	if e.TraceID == "" {
		return
	}
	if k.covers == nil {
		k.covers = map[string]*cover{}
	}
	c := k.covers[e.TraceID]
	if c == nil {
		c = &cover{}
		k.covers[e.TraceID] = c
	}
	c.add(e)
}

// Check re-hashes the records src holds against the envelopes added and
// records the findings in rep (RecordsChecked, Records, Notes; a record
// problem makes rep.OK false). With executionID "" it checks every
// execution src or the envelopes name, and the vault's tombstones; else
// that execution alone. An error means src could not be read.
func (k *RecordChecker) Check(ctx context.Context, src RecordSource, executionID string, rep *VerifyReport) error {
	rc := recordCheck{src: src}
	if executionID != "" {
		c := k.covers[executionID]
		if c == nil {
			c = &cover{}
		}
		rc.check(executionID, c)
	} else {
		ids, err := src.TraceIDs()
		if err != nil {
			return err
		}
		set := make(map[string]struct{}, len(ids)+len(k.covers))
		for _, id := range ids {
			set[id] = struct{}{}
		}
		for id := range k.covers {
			set[id] = struct{}{}
		}
		all := make([]string, 0, len(set))
		for id := range set {
			all = append(all, id)
		}
		sort.Strings(all)
		for i, id := range all {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			c := k.covers[id]
			if c == nil {
				c = &cover{}
			}
			rc.check(id, c)
			if rc.err != nil {
				break
			}
		}
		if rc.err == nil {
			rc.checkErasures(k.erased)
		}
	}
	if rc.err != nil {
		return rc.err
	}
	rc.apply(rep)
	return nil
}

// boltRecords is the bbolt file's RecordSource, over one read transaction.
type boltRecords struct{ tx *bolt.Tx }

func (b boltRecords) RunRecord(id string) ([]byte, error) {
	return b.tx.Bucket(bucketRuns).Get([]byte(id)), nil
}

func (b boltRecords) RunBody(id string) (input, program []byte, present bool, err error) {
	if b.tx.Bucket(bucketRunBodies).Get([]byte(id)) == nil {
		return nil, nil, false, nil
	}
	e := Run{ID: id}
	if err := loadBody(b.tx, &e); err != nil {
		return nil, nil, true, err
	}
	return e.Input, e.Program, true, nil
}

func (b boltRecords) StepRecords(id string) ([]Step, error) { return readSteps(b.tx, id), nil }

func (b boltRecords) BadStepKeys(id string) int { return badStepKeys(b.tx, id) }

func (b boltRecords) Legacy(id string) bool {
	return b.tx.Bucket(bucketLegacyRuns).Get([]byte(id)) != nil
}

// TraceIDs lists, sorted, every execution id the records name.
func (b boltRecords) TraceIDs() ([]string, error) {
	tx := b.tx
	set := map[string]struct{}{}
	_ = tx.Bucket(bucketRuns).ForEach(func(k, _ []byte) error {
		set[string(k)] = struct{}{}
		return nil
	})
	_ = tx.Bucket(bucketRunBodies).ForEach(func(k, _ []byte) error {
		set[string(k)] = struct{}{}
		return nil
	})
	c := tx.Bucket(bucketSteps).Cursor()
	for k, _ := c.First(); k != nil; {
		// Ids hold no NUL: the id ends at the first one, whatever the
		// key's length (a malformed key is the record check's to report).
		n := bytes.IndexByte(k, 0)
		if n < 0 {
			k, _ = c.Next()
			continue
		}
		id := k[:n]
		set[string(id)] = struct{}{}
		// Skip to the next execution's steps. A damaged branch page can
		// send the seek back, which would loop here for ever.
		prev := k
		if k, _ = c.Seek(append(bytes.Clone(id), 1)); k != nil && bytes.Compare(k, prev) <= 0 {
			return nil, fmt.Errorf("%w: steps: a seek past %q went back to %q", ErrCorrupt, prev, k)
		}
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func (b boltRecords) EachSecret(fn func(SecretRecord)) error {
	return b.tx.Bucket(bucketSecrets).ForEach(func(_, v []byte) error {
		var s SecretRecord
		if json.Unmarshal(v, &s) != nil {
			return nil // the vault's readers report it
		}
		fn(s)
		return nil
	})
}
