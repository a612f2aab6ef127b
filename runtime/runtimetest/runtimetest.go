// Package runtimetest opens real governed runtimes for tests: a fresh bbolt
// file in the test's temp dir, a fixed vault key, a compilation cache shared
// by the test binary, and an audit-chain check at cleanup.
package runtimetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// VaultKey is the vault key Open uses unless the config sets one.
var VaultKey = []byte("0123456789abcdef0123456789abcdef")

// Main runs a test binary's tests with one compilation cache shared by all
// of them — compiling the bundled tools takes seconds under -race — and
// returns the exit code. Call it from TestMain: os.Exit(runtimetest.Main(m)).
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nanovm-wasm-cache")
	if err != nil {
		panic(err)
	}
	CacheDir = dir
	defer os.RemoveAll(dir)
	return m.Run()
}

// warm fills the shared cache before the first Open that uses it.
var warm sync.Once

// warmCache compiles the bundled tools into the shared cache once, with no
// compile deadline to speak of: under -race on a busy machine the largest
// (jq, 6.5 MB of Go) can take longer than the default 60 s, and a test's
// runtime would then give up on it and compile it again at every open.
func warmCache(dir string) error {
	tmp, err := os.MkdirTemp("", "nanovm-warm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rt, err := runtime.Open(context.Background(), runtime.Config{DBPath: filepath.Join(tmp, "warm.db"), VaultKey: VaultKey,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheDir: dir, ModuleLimits: tools.ModuleLimits{CompileTimeout: time.Hour}})
	if err != nil {
		return err
	}
	if err := rt.WarmTools(context.Background()); err != nil {
		rt.Close()
		return err
	}
	return rt.Close()
}

// CacheDir is the shared compilation cache Main made; "" before Main.
var CacheDir string

// Logger discards logs unless the test runs with -v.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Open opens a runtime configured by cfg, filling what it leaves zero: a
// database in tb.TempDir(), VaultKey, Logger(), CacheDir. At cleanup it
// verifies the whole audit chain and closes the runtime.
func Open(tb testing.TB, cfg runtime.Config) *runtime.Runtime {
	tb.Helper()
	if cfg.DBPath == "" {
		cfg.DBPath = filepath.Join(tb.TempDir(), "nano.db")
	}
	if cfg.VaultKey == nil {
		cfg.VaultKey = VaultKey
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = CacheDir
	}
	if cfg.CacheDir != "" && cfg.CacheDir == CacheDir && !cfg.NoBundledTools {
		warm.Do(func() {
			if err := warmCache(CacheDir); err != nil {
				tb.Fatalf("warm the compilation cache: %v", err)
			}
		})
	}
	rt, err := runtime.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		rep, err := rt.VerifyAudit(context.Background(), "")
		if err != nil || !rep.OK {
			tb.Errorf("audit at cleanup: %+v %v", rep, err)
		}
		if err := rt.Close(); err != nil {
			tb.Error(err)
		}
	})
	return rt
}

// BarrierProgram is the payment pipeline with an llm step third, for a
// runtime with an LLM (mock/yes answers it). With pipelined commits, pure
// tool steps are committed while the run goes on; the llm step waits until
// both earlier steps are durable, so a cancellation from their progress
// lands before it, at a known place (and without pipelining, as always).
const BarrierProgram = `{"name":"payment_with_approval","steps":[
 {"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}},
 {"id":"reserve","type":"tool","tool":"reserve_funds","args":{"order_id":"$order_id","amount":"$amount"},"output_key":"reservation"},
 {"id":"approve","type":"llm","prompt":"Approve order $order_id?","allowed_outputs":["yes","no"]},
 {"id":"capture","type":"tool","tool":"capture_payment","args":{"order_id":"$order_id","reservation":"$reservation"},"output_key":"capture"},
 {"id":"receipt","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id","capture":"$capture"},"is_terminal":true}]}`

// TamperEnvelope changes the state hash of trace's envelope at step index
// in the closed database file at path, without re-hashing it, and returns
// its seq: verify must report the chain broken there. The file must be
// a bbolt store, closed.
func TamperEnvelope(t testing.TB, path, trace string, index int) uint64 {
	t.Helper()
	var seq uint64
	UpdateFile(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("envelopes"))
		return b.ForEach(func(k, v []byte) error {
			var e store.Envelope
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if seq != 0 || e.TraceID != trace || e.StepIndex != index {
				return nil
			}
			seq = binary.BigEndian.Uint64(k)
			e.StateHash = strings.Repeat("0", 64)
			nv, err := json.Marshal(e)
			if err != nil {
				return err
			}
			return b.Put(bytes.Clone(k), nv)
		})
	})
	if seq == 0 {
		t.Fatalf("tamper: no envelope of %s at step %d", trace, index)
	}
	return seq
}

// UpdateFile runs fn in one write transaction on the closed bbolt store
// at path, as someone with the file and bbolt would, and fails t if it
// cannot.
func UpdateFile(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// Signer is a checkpoint signer with a fresh key named name.
func Signer(t testing.TB, name string) *checkpoint.Signer {
	t.Helper()
	skey, _, err := checkpoint.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTool is the module wasmtools.TestTools holds under name; it fails tb
// when there is none.
func TestTool(tb testing.TB, name string) wasmtools.Module {
	tb.Helper()
	return module(tb, wasmtools.TestTools, "test tool", name)
}

// BundledTool is the module wasmtools.Bundled holds under name; it fails
// tb when there is none.
func BundledTool(tb testing.TB, name string) wasmtools.Module {
	tb.Helper()
	return module(tb, wasmtools.Bundled, "bundled tool", name)
}

func module(tb testing.TB, load func() ([]wasmtools.Module, error), what, name string) wasmtools.Module {
	tb.Helper()
	mods, err := load()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range mods {
		if m.Name == name {
			return m
		}
	}
	tb.Fatalf("no %s %q", what, name)
	return wasmtools.Module{}
}
