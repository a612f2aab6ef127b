package benchmark

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// Config configures an Env. The zero value is a fresh temporary database
// with fsync on, an in-memory compilation cache and no logs.
type Config struct {
	// DBPath is the database file. "" means a fresh file in a new
	// temporary directory, removed by Close. A postgres:// address
	// (store/postgres.IsDSN) runs the scenarios on PostgreSQL: on a fresh
	// database that Open creates on that server and Close drops; the
	// round-trip scenario's own stores are then bbolt files in a temporary
	// directory.
	DBPath string
	// Keep leaves the database (and the round-trip stores beside it) in
	// place at Close. It has no effect on a temporary directory's removal
	// when DBPath is "".
	Keep bool
	// NoSync turns fsync off for the runtime's bbolt store (BM-INT-05
	// always measures both modes on stores of its own). It has no effect
	// on PostgreSQL, whose durability is the server's settings.
	NoSync bool
	// PipelinePureSteps sets the runtime's runtime.Config.PipelinePureSteps.
	PipelinePureSteps bool
	// CacheDir is the compilation cache shared by the runtime and the
	// tool-call microbenchmark. "" means compile in memory each time.
	CacheDir string
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
}

// Env is an open runtime with the bundled tools and MockModel, on which
// scenarios run one after another (not concurrently). It remembers how
// many envelopes the scenarios wrote so that Audit can check the chain
// holds exactly those.
type Env struct {
	cfg    Config
	rt     *runtime.Runtime
	tmpDir string // removed at Close; "" when cfg.DBPath was given
	// pg is set when the scenarios run on PostgreSQL; sideDir is then
	// where the round-trip stores go.
	pg      *pgBench
	sideDir string

	mu        sync.Mutex
	envelopes int // written by scenarios so far
	baseline  int // in the chain before any scenario ran
	extra     []string
	toolHost  *tools.Host
	toolReg   *tools.Registry
	closers   []func() error
	sides     int
}

// onClose registers a closer Close runs before closing the runtime.
func (e *Env) onClose(f func() error) {
	e.mu.Lock()
	e.closers = append(e.closers, f)
	e.mu.Unlock()
}

// Open opens an Env.
func Open(ctx context.Context, cfg Config) (*Env, error) {
	e := &Env{cfg: cfg}
	if cfg.Logger == nil {
		e.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.cfg.DBPath == "" || postgres.IsDSN(e.cfg.DBPath) {
		dir, err := os.MkdirTemp("", "nano-vm-mcp-bench")
		if err != nil {
			return nil, fmt.Errorf("open bench env: %w", err)
		}
		e.tmpDir = dir
		if e.cfg.DBPath == "" {
			e.cfg.DBPath = filepath.Join(dir, "bench.db")
		}
	}
	dbAddr := e.cfg.DBPath
	if postgres.IsDSN(e.cfg.DBPath) {
		e.sideDir = e.tmpDir
		pg, err := createPGDatabase(ctx, e.cfg.DBPath)
		if err != nil {
			e.cleanup()
			return nil, fmt.Errorf("open bench env: %w", err)
		}
		e.pg, dbAddr = pg, pg.dsn
	}
	model, err := llm.New(MockModel, nil)
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("open bench env: model: %w", err)
	}
	// A random key keeps the vault off the environment and leaves no key
	// file beside a --db the user chose.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cacheDir := e.cfg.CacheDir
	if cacheDir == "" {
		cacheDir = "-"
	}
	e.rt, err = runtime.Open(ctx, runtime.Config{
		DBPath: dbAddr, VaultKey: key, LLM: model, LLMModel: MockModel,
		NoSync: e.cfg.NoSync, PipelinePureSteps: e.cfg.PipelinePureSteps, CacheDir: cacheDir, Logger: e.cfg.Logger,
	})
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("open bench env: %w", err)
	}
	rep, err := e.rt.VerifyAudit(ctx, "")
	if err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("open bench env: audit: %w", err)
	}
	e.baseline = rep.Checked
	return e, nil
}

// Runtime returns the runtime the scenarios run on.
func (e *Env) Runtime() *runtime.Runtime { return e.rt }

// DBPath returns the runtime's database file, or on PostgreSQL the
// address of the fresh database the scenarios run on (with its password,
// if the given address had one: print it through postgres.Redact).
func (e *Env) DBPath() string {
	if e.pg != nil {
		return e.pg.dsn
	}
	return e.cfg.DBPath
}

// Durability says what a commit waits for: "fsync", "no fsync", or on
// PostgreSQL the server's fsync and synchronous_commit settings.
func (e *Env) Durability() string {
	switch {
	case e.pg != nil:
		return e.pg.durability
	case e.cfg.NoSync:
		return "no fsync"
	}
	return "fsync"
}

// Envelopes returns how many envelopes the scenarios have written.
func (e *Env) Envelopes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.envelopes
}

func (e *Env) addEnvelopes(n int) {
	e.mu.Lock()
	e.envelopes += n
	e.mu.Unlock()
}

// AuditReport is the end-of-run check of the whole chain.
type AuditReport struct {
	// OK is true when the chain verifies and holds exactly the envelopes
	// the scenarios counted.
	OK bool `json:"ok"`
	// Checked is the number of envelopes verified.
	Checked int `json:"checked"`
	// Expected is the number the scenarios counted (plus any the database
	// held before).
	Expected int `json:"expected"`
	// HeadSeq and HeadHash are the chain's last envelope.
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Problem says what failed, "" when OK.
	Problem string `json:"problem,omitempty"`
}

// Audit verifies the whole envelope chain and compares its length with the
// envelopes the scenarios counted.
func (e *Env) Audit(ctx context.Context) (AuditReport, error) {
	rep, err := e.rt.VerifyAudit(ctx, "")
	if err != nil {
		return AuditReport{}, fmt.Errorf("audit: %w", err)
	}
	out := AuditReport{OK: rep.OK, Checked: rep.Checked, Expected: e.baseline + e.Envelopes(), HeadSeq: rep.HeadSeq, HeadHash: rep.HeadHash}
	switch {
	case !rep.OK && rep.Broken != nil:
		out.Problem = fmt.Sprintf("chain broken at seq %d: %s", rep.Broken.Seq, rep.Broken.Reason)
	case !rep.OK && len(rep.Records) > 0:
		out.Problem = fmt.Sprintf("%d record(s) do not match their envelopes, first: %s", len(rep.Records)+rep.RecordsOmitted, rep.Records[0])
	case !rep.OK:
		out.Problem = "chain does not verify"
	case out.Checked != out.Expected:
		out.OK = false
		out.Problem = fmt.Sprintf("chain holds %d envelopes, the runs counted %d", out.Checked, out.Expected)
	}
	return out, nil
}

// Close closes the runtime and removes the temporary database (and, unless
// Keep, the files scenarios created beside a given one).
func (e *Env) Close() error {
	var errs []error
	for _, f := range e.closers {
		errs = append(errs, f())
	}
	e.closers = nil
	if e.toolHost != nil {
		errs = append(errs, e.toolHost.Close(context.Background()))
	}
	if e.rt != nil {
		errs = append(errs, e.rt.Close())
	}
	e.cleanup()
	return errors.Join(errs...)
}

func (e *Env) cleanup() {
	if e.pg != nil && !e.cfg.Keep {
		if err := e.pg.drop(); err != nil {
			e.cfg.Logger.Error("bench: " + err.Error())
		}
		e.pg = nil
	}
	if e.tmpDir != "" {
		os.RemoveAll(e.tmpDir)
		return
	}
	if !e.cfg.Keep {
		for _, p := range e.extra {
			os.Remove(p)
		}
	}
}

// sidePath names a file a scenario creates beside the database.
func (e *Env) sidePath(suffix string) string {
	p := e.cfg.DBPath + "." + suffix
	if e.sideDir != "" {
		p = filepath.Join(e.sideDir, "bench.db."+suffix)
	}
	e.mu.Lock()
	e.extra = append(e.extra, p)
	e.mu.Unlock()
	return p
}

// openSideStore opens a fresh store beside the database (BM-INT-05), a
// new file each time: a Go benchmark runs a scenario several times on one
// Env, and bbolt's file lock would block on a file still open.
func (e *Env) openSideStore(name string, noSync bool) (*store.DB, error) {
	e.mu.Lock()
	e.sides++
	n := e.sides
	e.mu.Unlock()
	p := e.sidePath(fmt.Sprintf("%s-%d", name, n))
	// The store's journal goes with it (store.JournalSuffix).
	e.sidePath(fmt.Sprintf("%s-%d", name, n) + store.JournalSuffix)
	os.Remove(p)
	os.Remove(p + store.JournalSuffix)
	opts := store.DefaultOptions()
	opts.NoSync = noSync
	return store.Open(p, opts)
}

// toolRegistry returns a sandbox host and registry outside the runtime,
// with get_order_amount registered fresh and pooled, for the tool-call
// microbenchmark: the runtime's registry is not exposed, and the call is
// what is measured, not the policy gate or the store.
func (e *Env) toolRegistry(ctx context.Context) (*tools.Registry, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.toolReg != nil {
		return e.toolReg, nil
	}
	host, err := tools.NewHost(ctx, tools.HostOptions{CacheDir: e.cfg.CacheDir, Logger: e.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("tool host: %w", err)
	}
	reg := tools.NewRegistry(host, tools.NewMemoryStore(), tools.RegistryOptions{})
	mods, err := wasmtools.Bundled()
	if err != nil {
		_ = host.Close(ctx)
		return nil, err
	}
	for _, mod := range mods {
		if mod.Name != "get_order_amount" {
			continue
		}
		m, err := tools.ParseManifest(mod.Manifest)
		if err != nil {
			_ = host.Close(ctx)
			return nil, err
		}
		if _, err := reg.Register(ctx, m, mod.Wasm); err != nil {
			_ = host.Close(ctx)
			return nil, fmt.Errorf("register %s: %w", m.Name, err)
		}
		m.Name, m.Isolation, m.PoolSize = pooledTool, tools.IsolationPool, PoolSize
		if _, err := reg.Register(ctx, m, mod.Wasm); err != nil {
			_ = host.Close(ctx)
			return nil, fmt.Errorf("register %s: %w", m.Name, err)
		}
	}
	e.toolHost, e.toolReg = host, reg
	return reg, nil
}

// PoolSize is the warm-instance bound of the pooled tool in the tool-call
// microbenchmark: two per core on the 2-core reference machine, enough to
// keep both cores busy while one instance is being returned.
const PoolSize = 4

const pooledTool = "get_order_amount_pooled"
