package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

var envelopesBucket = []byte("envelopes")

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// TestTamper ensures every kind of direct edit of the envelopes in the
// bbolt file is detected by VerifyChain at the right seq.
func TestTamper(t *testing.T) {
	const n = 10
	tests := []struct {
		name        string
		tamper      func(b *bolt.Bucket) error
		wantSeq     uint64
		wantProblem store.Problem
		traceID     string // also detected when verifying this run
	}{
		{name: "alter a payload byte", wantSeq: 5, wantProblem: store.ProblemHashMismatch, traceID: "exec-1",
			tamper: func(b *bolt.Bucket) error {
				v := bytes.Clone(b.Get(seqKey(5)))
				i := bytes.Index(v, []byte(`"out":"value-4"`))
				v[i+len(`"out":"value-`)] = '9'
				return b.Put(seqKey(5), v)
			}},
		{name: "alter the state hash", wantSeq: 3, wantProblem: store.ProblemHashMismatch, traceID: "exec-1",
			tamper: func(b *bolt.Bucket) error {
				return editEnvelope(b, 3, func(e *store.Envelope) { e.StateHash = "forged" }, false)
			}},
		{name: "alter and re-hash", wantSeq: 5, wantProblem: store.ProblemPrevMismatch, traceID: "exec-1",
			tamper: func(b *bolt.Bucket) error {
				return editEnvelope(b, 4, func(e *store.Envelope) { e.PolicyHash = "forged" }, true)
			}},
		{name: "delete one envelope", wantSeq: 6, wantProblem: store.ProblemGap, traceID: "exec-0",
			tamper: func(b *bolt.Bucket) error { return b.Delete(seqKey(6)) }},
		{name: "delete the first envelope", wantSeq: 1, wantProblem: store.ProblemGap, traceID: "exec-0",
			tamper: func(b *bolt.Bucket) error { return b.Delete(seqKey(1)) }},
		{name: "delete the last envelope", wantSeq: n, wantProblem: store.ProblemGap,
			tamper: func(b *bolt.Bucket) error { return b.Delete(seqKey(n)) }},
		{name: "swap two envelopes", wantSeq: 3, wantProblem: store.ProblemOutOfOrder, traceID: "exec-0",
			tamper: func(b *bolt.Bucket) error {
				v3, v4 := bytes.Clone(b.Get(seqKey(3))), bytes.Clone(b.Get(seqKey(4)))
				if err := b.Put(seqKey(3), v4); err != nil {
					return err
				}
				return b.Put(seqKey(4), v3)
			}},
		{name: "swap and renumber", wantSeq: 3, wantProblem: store.ProblemHashMismatch, traceID: "exec-0",
			tamper: func(b *bolt.Bucket) error {
				var e3, e4 store.Envelope
				_ = json.Unmarshal(b.Get(seqKey(3)), &e3)
				_ = json.Unmarshal(b.Get(seqKey(4)), &e4)
				e3.Seq, e4.Seq = 4, 3
				v3, _ := json.Marshal(e3)
				v4, _ := json.Marshal(e4)
				if err := b.Put(seqKey(3), v4); err != nil {
					return err
				}
				return b.Put(seqKey(4), v3)
			}},
		{name: "garbage bytes", wantSeq: 7, wantProblem: store.ProblemUndecodable, traceID: "exec-0",
			tamper: func(b *bolt.Bucket) error { return b.Put(seqKey(7), []byte("\x00garbage")) }},
		{name: "forged extra envelope", wantSeq: n + 1, wantProblem: store.ProblemOutOfOrder,
			tamper: func(b *bolt.Bucket) error {
				var last store.Envelope
				_ = json.Unmarshal(b.Get(seqKey(n)), &last)
				last.Seq, last.PrevHash = n+1, last.Hash
				last.Hash, _ = last.ComputeHash()
				v, _ := json.Marshal(last)
				return b.Put(seqKey(n+1), v)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := twoRunChain(t, n)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error { return tc.tamper(tx.Bucket(envelopesBucket)) })
			for _, id := range []string{"", tc.traceID} {
				if id == "" && tc.traceID == "" {
					continue
				}
				rep, err := db.VerifyChain(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || rep.Broken == nil {
					t.Fatalf("VerifyChain(%q) passed after tampering", id)
				}
				if id == "" && (rep.Broken.Seq != tc.wantSeq || rep.Broken.Problem != tc.wantProblem) {
					t.Errorf("VerifyChain = seq %d %v (%s), want seq %d %v", rep.Broken.Seq, rep.Broken.Problem, rep.Broken.Reason, tc.wantSeq, tc.wantProblem)
				}
			}
		})
	}
}

// editEnvelope rewrites one stored envelope, optionally recomputing its own
// hash as a careful attacker would.
func editEnvelope(b *bolt.Bucket, seq uint64, edit func(*store.Envelope), rehash bool) error {
	var e store.Envelope
	if err := json.Unmarshal(b.Get(seqKey(seq)), &e); err != nil {
		return err
	}
	edit(&e)
	if rehash {
		h, err := e.ComputeHash()
		if err != nil {
			return err
		}
		e.Hash = h
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), v)
}

// TestTamperRunLink ensures per-run verification also checks
// the link into the previous envelope of the global chain, which belongs
// to another run.
func TestTamperRunLink(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nano.db")
	db := openAt(t, path, &store.Options{NoSync: true})
	for i, id := range []string{"a", "b"} {
		if _, err := db.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: id}, Index: 0, Step: []byte(`1`),
			Envelope: &store.Envelope{StepID: "s", StateHash: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = tamperedDB(t, path, func(tx *bolt.Tx) error {
		return editEnvelope(tx.Bucket(envelopesBucket), 1, func(e *store.Envelope) { e.StateHash = "x" }, true)
	})
	rep, err := db.VerifyChain(ctx, "b")
	if err != nil || rep.OK || rep.Broken.Seq != 2 || rep.Broken.Problem != store.ProblemPrevMismatch {
		t.Fatalf("VerifyChain(b) = %+v, %v; want prev_hash mismatch at seq 2", rep, err)
	}
}

// TestTamperRunIndex ensures the whole-chain check holds the per-run
// envelope index to the chain: an entry removed, added, or moved to
// another run's envelope is reported as an index mismatch, as a run's own
// verification would see it.
func TestTamperRunIndex(t *testing.T) {
	index := []byte("env_by_exec")
	key := func(trace string, seq uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(trace), 0), seq)
	}
	tests := []struct {
		name   string
		tamper func(b *bolt.Bucket) error
	}{
		{"remove an entry", func(b *bolt.Bucket) error { return b.Delete(key("exec-0", 3)) }},
		{"list another run's envelope", func(b *bolt.Bucket) error { return b.Put(key("exec-0", 2), nil) }},
		{"move an entry to another run", func(b *bolt.Bucket) error {
			if err := b.Delete(key("exec-1", 4)); err != nil {
				return err
			}
			return b.Put(key("exec-0", 4), nil)
		}},
		{"list an envelope under a run that has none", func(b *bolt.Bucket) error { return b.Put(key("exec-9", 1), nil) }},
		{"list a seq beyond the chain", func(b *bolt.Bucket) error { return b.Put(key("exec-0", 99), nil) }},
		{"a key of the wrong shape", func(b *bolt.Bucket) error { return b.Put([]byte("short"), nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := twoRunChain(t, 6)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error { return tc.tamper(tx.Bucket(index)) })
			rep, err := db.VerifyChain(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Broken == nil || rep.Broken.Problem != store.ProblemIndex {
				t.Fatalf("VerifyChain = %+v, want an index mismatch", rep)
			}
		})
	}
}

// twoRunChain writes n step commits alternating between runs exec-0 and
// exec-1 (envelope i's payload says value-i), checks the chain verifies,
// closes the store and returns its file.
func twoRunChain(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nano.db")
	db := openAt(t, path, &store.Options{NoSync: true})
	for i := range n {
		_, err := db.CommitStep(ctx, store.StepCommit{
			Run:   store.Run{ID: fmt.Sprint("exec-", i%2), Status: kernel.StatusRunning},
			Index: i / 2, Step: []byte(`{}`),
			Envelope: &store.Envelope{StepID: "s", StateHash: fmt.Sprint("state-", i), Payload: []byte(fmt.Sprintf(`{"out":"value-%d"}`, i))},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
		t.Fatalf("untouched chain: %+v, %v", rep, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
