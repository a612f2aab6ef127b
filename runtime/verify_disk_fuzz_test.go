package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	bolt "go.etcd.io/bbolt"
)

// diskSeed is a real database file made by real runs, and what get_trace
// shows of each run in it.
type diskSeed struct {
	file     []byte
	traces   map[string][]byte // trace id → get_trace's output (JSON)
	headSeq  uint64
	headHash string
	err      error
}

var (
	seedOnce sync.Once
	seed     diskSeed
)

// fuzzConfig opens a runtime on path the way the server would, minus the
// bundled tools (reading a trace needs none, and registering them would
// write to the file under test).
func fuzzConfig(path string) runtime.Config {
	return runtime.Config{DBPath: path, VaultKey: runtimetest.VaultKey, CacheDir: "-", NoBundledTools: true, Logger: runtimetest.Logger()}
}

// traceJSON is what get_trace answers for id: the whole trace.
func traceJSON(ctx context.Context, rt *runtime.Runtime, id string) ([]byte, error) {
	tv, err := rt.Trace(ctx, id, 0, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(tv)
}

// makeDiskSeed runs the payment pipeline (all steps succeed), a program
// whose tool fails, and one that suspends, and keeps the file.
func makeDiskSeed(dir string) diskSeed {
	ctx := context.Background()
	path := filepath.Join(dir, "seed.db")
	cfg := runtime.Config{DBPath: path, VaultKey: runtimetest.VaultKey, CacheDir: runtimetest.CacheDir, Logger: runtimetest.Logger()}
	rt, err := runtime.Open(ctx, cfg)
	if err != nil {
		return diskSeed{err: err}
	}
	var ids []string
	for _, req := range []runtime.RunRequest{
		{Program: mustRead("payment_pipeline", "program.json"), Input: map[string]any{"amount": 125.5, "order_id": "order-abc-123"}},
		{Program: json.RawMessage(`{"name":"bad","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":-1}}]}`)},
		{Program: mustRead("momo_suspend", "program.json"), Input: map[string]any{"amount": 50000, "order_id": "momo-1"}},
	} {
		res, err := rt.RunProgram(ctx, req)
		if res == nil {
			_ = rt.Close()
			return diskSeed{err: err}
		}
		ids = append(ids, res.TraceID)
	}
	if err := rt.Close(); err != nil {
		return diskSeed{err: err}
	}
	file, err := compactWithoutModules(path)
	if err != nil {
		return diskSeed{err: err}
	}
	// What get_trace shows, read as the fuzzed files will be read.
	small := filepath.Join(dir, "small.db")
	if err := os.WriteFile(small, file, 0o600); err != nil {
		return diskSeed{err: err}
	}
	rt, err = runtime.Open(ctx, fuzzConfig(small))
	if err != nil {
		return diskSeed{err: err}
	}
	defer rt.Close()
	s := diskSeed{file: file, traces: map[string][]byte{}}
	for _, id := range ids {
		if s.traces[id], err = traceJSON(ctx, rt, id); err != nil {
			return diskSeed{err: err}
		}
	}
	rep, err := rt.VerifyAudit(ctx, "")
	if err != nil || !rep.OK || rep.RecordsChecked == 0 {
		return diskSeed{err: fmt.Errorf("the seed does not verify: %+v %v", rep, err)}
	}
	s.headSeq, s.headHash = rep.HeadSeq, rep.HeadHash
	return s
}

// compactWithoutModules returns the file at path without the bundled
// modules' bytes (megabytes that no trace shows, where almost every fuzzed
// offset would land), compacted as bbolt compacts a file: the records,
// envelopes and indexes stay exactly as the runs wrote them.
func compactWithoutModules(path string) ([]byte, error) {
	src, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, err
	}
	err = src.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("tool_modules")); err != nil {
			return err
		}
		_, err := tx.CreateBucket([]byte("tool_modules"))
		return err
	})
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	small := path + ".small"
	dst, err := bolt.Open(small, 0o600, nil)
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	err = bolt.Compact(dst, src, 1<<20)
	_ = src.Close()
	// bbolt keeps two meta pages and falls back to the other when one is
	// damaged: two more commits make both point at the complete file, as
	// in a file that has served a while (otherwise the fallback would be
	// compaction's first, empty state).
	for i := 0; err == nil && i < 2; i++ {
		err = dst.Update(func(tx *bolt.Tx) error {
			m := tx.Bucket([]byte("meta"))
			return m.Put([]byte("created_at"), append([]byte(nil), m.Get([]byte("created_at"))...))
		})
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(small)
}

func mustRead(example, name string) json.RawMessage {
	b, err := os.ReadFile(filepath.Join("..", "examples", example, name))
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzVerifyDisk flips bytes in, and truncates or zeroes pages of, a real
// database file made by real runs, then opens it and verifies the audit:
// opening and verifying must report the damage or pass, never crash, and
// never pass when what get_trace shows of a run changed.
func FuzzVerifyDisk(f *testing.F) {
	seedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nanovm-fuzz-disk")
		if err != nil {
			seed.err = err
			return
		}
		seed = makeDiskSeed(dir)
		_ = os.RemoveAll(dir)
	})
	if seed.err != nil {
		f.Fatal("make the seed database:", seed.err)
	}
	f.Logf("seed database: %d bytes, %d runs", len(seed.file), len(seed.traces))
	const page = 4096
	n := uint32(len(seed.file))
	// A flip in every page, a truncation, a zeroed page.
	for off := uint32(0); off < n; off += page {
		f.Add(off+page/2, byte(0x20), uint8(0))
	}
	f.Add(n/2, byte(0), uint8(2))
	f.Add(uint32(3*page), byte(0), uint8(3))
	f.Fuzz(func(t *testing.T, off uint32, val byte, mode uint8) {
		file := append([]byte(nil), seed.file...)
		p := int(off % uint32(len(file)))
		switch mode % 4 {
		case 0: // flip bits
			file[p] ^= val | 1
		case 1: // set a byte
			if file[p] == val {
				return
			}
			file[p] = val
		case 2: // truncate at a page boundary
			file = file[:p/page*page]
		case 3: // zero a page
			start := p / page * page
			clear(file[start:min(start+page, len(file))])
		}
		path := filepath.Join(t.TempDir(), "fuzzed.db")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rt, err := runtime.Open(ctx, fuzzConfig(path))
		if err != nil {
			return // the damage was reported at open
		}
		defer rt.Close()
		rep, err := rt.VerifyAudit(ctx, "")
		if err != nil || !rep.OK {
			if err == nil && rep.Broken == nil && len(rep.Records) == 0 && rep.RecordsOmitted == 0 {
				t.Fatalf("verify not OK without saying why: %+v", rep)
			}
			return // the damage was reported
		}
		if rep.HeadSeq != seed.headSeq || rep.HeadHash != seed.headHash {
			// A consistent older state of the file (bbolt fell back to
			// its other meta page): every record matches its envelope,
			// but the chain is shorter than it was. Nothing inside the
			// file can tell; a checkpoint kept elsewhere does (audit
			// verify --checkpoint). It can only be shorter.
			if rep.HeadSeq >= seed.headSeq {
				t.Fatalf("verify passed with head %d %s, the seed's is %d %s", rep.HeadSeq, rep.HeadHash, seed.headSeq, seed.headHash)
			}
			return
		}
		for id, before := range seed.traces {
			after, err := traceJSON(ctx, rt, id)
			if err != nil {
				t.Fatalf("verify passed (%d envelopes, %d records) but get_trace of %s fails: %v", rep.Checked, rep.RecordsChecked, id, err)
			}
			if string(after) != string(before) {
				t.Fatalf("verify passed (%d envelopes, %d records) but get_trace of %s changed:\nbefore %s\nafter  %s", rep.Checked, rep.RecordsChecked, id, before, after)
			}
			if r, err := rt.VerifyAudit(ctx, id); err != nil || !r.OK {
				t.Fatalf("the whole chain verified but run %s does not: %+v %+v %v", id, r, r.Broken, err)
			}
		}
	})
}
