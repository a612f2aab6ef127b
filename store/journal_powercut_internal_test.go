package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// crash stops db as a killed process would: the committer drains what
// was queued, then the files are closed with no final checkpoint.
func (db *DB) crash() {
	db.mu.Lock()
	db.closed = true
	close(db.queue)
	db.mu.Unlock()
	<-db.done
	db.jerr = errors.New("crashed")
	_ = db.closeJournal()
	_ = db.bolt.Close()
	db.releaseJournal()
}

var stepPayload = []byte(`{"order_id":"A-1042","amount":129.5,"currency":"EUR"}`)

// commitSteps commits n steps of run id from index from, each through
// the real step path with its envelope.
func commitSteps(t *testing.T, db *DB, id string, from, n int) {
	t.Helper()
	ctx := context.Background()
	r, err := db.Run(ctx, id)
	if errors.Is(err, ErrNotFound) {
		if r, err = db.PutRun(ctx, Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "h", Input: stepPayload, Program: stepPayload}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	r.Input, r.Program = nil, nil
	for i := from; i < from+n; i++ {
		sc := StepCommit{Run: r, Index: i, Step: stepPayload,
			Envelope: &Envelope{StepID: fmt.Sprint("s", i), StateHash: "h", Payload: stepPayload}}
		if i == 0 {
			sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = RecordSHA256(stepPayload), RecordSHA256(stepPayload)
		}
		if _, err := db.CommitStep(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSteps asserts run id holds exactly steps 0..n-1 and the whole
// chain verifies.
func checkSteps(t *testing.T, db *DB, runs map[string]int) {
	t.Helper()
	ctx := context.Background()
	for id, n := range runs {
		steps, err := db.Steps(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != n {
			t.Fatalf("run %s has %d steps, want %d (every acknowledged one)", id, len(steps), n)
		}
	}
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || !rep.OK {
		t.Fatalf("chain after recovery: %+v, %v", rep, err)
	}
}

// TestJournalPowerCut ensures every acknowledged commit survives a
// power cut that loses any mix of the bbolt file's unsynced writes. The
// bbolt file is snapshotted right after a checkpoint (all that is on
// disk for sure), more commits are acknowledged (synced to the journal
// only), the process stops without a checkpoint, and the file is then
// rebuilt page by page from the snapshot or the latest bytes at random,
// meta pages included, as a disk that wrote back some dirty pages and
// not others would leave it. The journal is kept: it was synced.
func TestJournalPowerCut(t *testing.T) {
	for trial := range 6 {
		t.Run(fmt.Sprint("trial", trial), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(trial), 7))
			path := filepath.Join(t.TempDir(), "cut.db")
			db, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			runs := map[string]int{}
			for r := range 3 {
				id := fmt.Sprint("before-", r)
				commitSteps(t, db, id, 0, 20)
				runs[id] = 20
			}
			if err := db.requestCheckpoint(); err != nil {
				t.Fatal(err)
			}
			snap, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// After the checkpoint: new runs, more steps of old ones,
			// a tool module and a deletion, all acknowledged.
			for r := range 3 {
				id := fmt.Sprint("after-", r)
				commitSteps(t, db, id, 0, 30+trial*10)
				runs[id] = 30 + trial*10
				commitSteps(t, db, fmt.Sprint("before-", r), 20, 15)
				runs[fmt.Sprint("before-", r)] = 35
			}
			// A read: bbolt commits (unsynced) what the write
			// transaction kept open held; what follows stays in it
			// and the journal only.
			if _, _, err := db.Head(context.Background()); err != nil {
				t.Fatal(err)
			}
			commitSteps(t, db, "after-1", runs["after-1"], 7)
			runs["after-1"] += 7
			mod := bytes.Repeat([]byte{0, 'a', 's', 'm'}, 3000)
			if err := db.PutToolVersion(context.Background(), ToolRecord{Name: "t", ModuleSHA256: sha256hex(mod)}, mod); err != nil {
				t.Fatal(err)
			}
			db.crash()

			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ps := 4096
			cut := make([]byte, max(len(snap), len(after)))
			for off := 0; off < len(cut); off += ps {
				end := min(off+ps, len(cut))
				src := after
				if rng.IntN(2) == 0 {
					src = snap
				}
				if off < len(src) {
					copy(cut[off:end], src[off:min(end, len(src))])
				}
			}
			if rng.IntN(2) == 0 {
				cut = cut[:len(snap)] // the growth was not synced either
			}
			if err := os.WriteFile(path, cut, 0o600); err != nil {
				t.Fatal(err)
			}

			db, err = Open(path, &Options{CheckOnOpen: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkSteps(t, db, runs)
			if got, err := db.Module(context.Background(), sha256hex(mod)); err != nil || !bytes.Equal(got, mod) {
				t.Fatalf("module after recovery: %d bytes, %v", len(got), err)
			}
			// The store goes on: more steps commit and survive a clean
			// reopen.
			commitSteps(t, db, "after-0", runs["after-0"], 5)
			runs["after-0"] += 5
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(path, &Options{CheckOnOpen: true})
			if err != nil {
				t.Fatal(err)
			}
			checkSteps(t, db, runs)
		})
	}
}

// TestJournalRecoveredWithoutJournal ensures a journal left by an
// unclean stop is replayed by an Open that runs without one (NoSync,
// NoJournal), which then marks the bbolt file authoritative: a later
// journaled Open restores nothing over its own commits.
func TestJournalRecoveredWithoutJournal(t *testing.T) {
	for _, opts := range []*Options{{NoJournal: true}, {NoSync: true}} {
		t.Run(fmt.Sprintf("nojournal=%v,nosync=%v", opts.NoJournal, opts.NoSync), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mixed.db")
			db, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			commitSteps(t, db, "r", 0, 10)
			if err := db.requestCheckpoint(); err != nil {
				t.Fatal(err)
			}
			snap, _ := os.ReadFile(path)
			commitSteps(t, db, "r", 10, 10)
			db.crash()
			// The worst power cut: nothing after the checkpoint reached
			// the bbolt file.
			if err := os.WriteFile(path, snap, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err = Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkSteps(t, db, map[string]int{"r": 20})
			commitSteps(t, db, "r", 20, 5)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkSteps(t, db, map[string]int{"r": 25})
		})
	}
}

// TestJournalForeignWrite ensures Open refuses, rather than rolls back,
// a bbolt file that went on past its journal's last record: a build
// without the journal wrote it after an unclean stop.
func TestJournalForeignWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foreign.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitSteps(t, db, "r", 0, 5)
	// A read has bbolt commit them (unsynced), as a killed process
	// may have left them in the page cache.
	if _, _, err := db.Head(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.crash()
	// Hide the journal, write without it, put it back.
	if err := os.Rename(path+JournalSuffix, path+".hidden"); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, &Options{NoJournal: true})
	if err != nil {
		t.Fatal(err)
	}
	commitSteps(t, db, "r", 5, 5)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".hidden", path+JournalSuffix); err != nil {
		t.Fatal(err)
	}
	wantOpenCorrupt(t, path, "written without the journal")
}

// TestJournalSyncedPaths ensures the commits the journal does not take
// (a transaction bigger than half of it; one that may make bbolt remap
// its file, which the pin would block) commit through bbolt's own syncs,
// and survive a crash with everything around them.
func TestJournalSyncedPaths(t *testing.T) {
	saved := journalMmap
	journalMmap = 1 << 20 // remaps come soon
	defer func() { journalMmap = saved }()
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := Open(path, &Options{JournalBytes: jMinBytes})
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	var mods [][]byte
	for i := range 8 {
		// 48 KiB: more than half the 64 KiB journal.
		mod := bytes.Repeat([]byte{byte(i), 'w', 'a', 's', 'm', 0, 1, 2}, 6<<10)
		mods = append(mods, mod)
		if err := db.PutToolVersion(context.Background(), ToolRecord{Name: fmt.Sprint("t", i), ModuleSHA256: sha256hex(mod)}, mod); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint("r", i)
		commitSteps(t, db, id, 0, 40)
		runs[id] = 40
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() <= 1<<20 {
		t.Fatalf("the file did not grow past the first mapping: %v %v", fi.Size(), err)
	}
	db.crash()
	db, err = Open(path, &Options{CheckOnOpen: true, JournalBytes: jMinBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkSteps(t, db, runs)
	for _, mod := range mods {
		if got, err := db.Module(context.Background(), sha256hex(mod)); err != nil || !bytes.Equal(got, mod) {
			t.Fatalf("module: %d bytes, %v", len(got), err)
		}
	}
}

// crashAfterSteps opens a new database at path, commits n steps of run
// "r" and crashes it, leaving them in the journal only.
func crashAfterSteps(t *testing.T, path string, n int) {
	t.Helper()
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitSteps(t, db, "r", 0, n)
	db.crash()
}

// wantOpenCorrupt ensures Open refuses the database at path with
// ErrCorrupt, its message saying says.
func wantOpenCorrupt(t *testing.T, path, says string) {
	t.Helper()
	_, err := Open(path, nil)
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(says)) {
		t.Fatalf("Open = %v, want ErrCorrupt saying %q", err, says)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestJournalWithoutItsDatabase ensures a journal holding commits whose
// database file is gone is refused, naming both ways out, rather than
// replayed into a new, empty file or silently dropped.
func TestJournalWithoutItsDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone.db")
	crashAfterSteps(t, path, 3)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wantOpenCorrupt(t, path, "database file that is missing")
	// A clean journal alone is harmless: the database starts empty.
	if err := os.Remove(path + JournalSuffix); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, nil)
	if err != nil {
		t.Fatalf("Open beside a clean journal whose database was removed: %v", err)
	}
	checkSteps(t, db, map[string]int{})
	_ = db.Close()
}
