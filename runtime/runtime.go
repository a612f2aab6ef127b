package runtime

import (
	"oras.land/oras-go/v2/registry/remote/auth"

	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
	"github.com/nanovm/nano-vm-mcp/runtime/internal/executor"
	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// Config configures a Runtime. Every zero field means its documented
// default; DefaultConfig's values come from the original's environment.
type Config struct {
	// DBPath is the bbolt file (NANO_VM_MCP_DB); default "nano_vm_mcp.db".
	// A postgres:// or postgresql:// address selects PostgreSQL instead
	// (store/postgres), which several replicas may share: see LeaseTimeout.
	DBPath string
	// LeaseTimeout is, on a database replicas share (PostgreSQL), how long
	// a replica's runs stay leased to it after its last heartbeat: when it
	// dies, another replica takes its running executions over this long
	// after (NANO_VM_MCP_LEASE_TIMEOUT); default DefaultLeaseTimeout. The
	// heartbeat runs every third of it. Ignored for a bbolt file.
	LeaseTimeout time.Duration
	// TakeOver makes this process, on a shared database, a serving
	// replica: it takes over the running executions no live replica
	// holds, and refuses to start beside a serving replica under another
	// policy. serve sets it; a CLI command leaves it off and only leases
	// the runs it starts itself.
	TakeOver bool
	// PolicyPath is the operator's policy file (NANO_VM_MCP_POLICY), JSON
	// or YAML. "" runs under DefaultPolicy, with a warning.
	PolicyPath string
	// VaultKey is the 32-byte vault key. nil reads NANO_VM_MCP_VAULT_KEY,
	// else a key file "<db>.vault-key" beside the database, created 0600
	// when absent.
	VaultKey []byte
	// LLM answers llm steps. nil means llm steps fail validation with a
	// message naming NANO_VM_MCP_LLM_MODEL.
	LLM kernel.LLMClient
	// LLMModel names the model LLM was built for, for messages and traces.
	LLMModel string
	// ToolsDir, when set, is a folder of tools registered at start-up: each
	// tool a sub-folder with manifest.json and one .wasm file (the layout
	// of wasm-tools/tools; see ReadToolFolder). A folder that cannot be
	// registered is skipped with a warning naming it and why.
	ToolsDir string
	// EnvFile is the operator's env file, if one was read (the CLI's
	// --env-file): it may hold the vault key and the API key, so no tool
	// may mount it, as the database and its key file.
	EnvFile string
	// NoBundledTools skips registering the bundled tools at start-up.
	NoBundledTools bool
	// DisableToolUpload refuses RegisterTool (the MCP register_tool tool
	// and the CLI still read ToolsDir).
	DisableToolUpload bool
	// InsecureRegistries may be reached over plain HTTP (the CLI's
	// --insecure-registry); a loopback registry always may, any other
	// only over HTTPS.
	InsecureRegistries []string
	// RegistryCredentials returns the credential for a registry host;
	// nil reads the operator's Docker-style config ($DOCKER_CONFIG/
	// config.json, else ~/.docker/config.json). Never from a client.
	RegistryCredentials auth.CredentialFunc
	// IdempotencyTTL is how long an idempotency key lives; default 24h.
	IdempotencyTTL time.Duration
	// NoSync trades durability on power loss for speed (see store.Options).
	NoSync bool
	// PipelinePureSteps lets a run go on while its steps are being made
	// durable, waiting only before a step that can act outside the sandbox
	// and before reporting its outcome. Off by default: then every step is
	// durable before the next one starts. See RATIONALE.md "Why are step
	// commits pipelined?".
	PipelinePureSteps bool
	// CacheDir holds compiled tool code; default "<db>.wasm-cache" beside
	// the database. "-" disables the disk cache.
	CacheDir string
	// CheckpointOrigin names the chain in its signed checkpoints; default
	// DefaultCheckpointOrigin(DBPath), "nano-vm-mcp/<db file name>".
	CheckpointOrigin string
	// CheckpointSigner signs checkpoints (SignCheckpoint); nil means none
	// can be signed.
	CheckpointSigner *checkpoint.Signer
	// CheckpointVerifierKeys are the verifier keys (note format) whose
	// checkpoints VerifyCheckpoint trusts; empty means CheckpointSigner's
	// own key, and with neither no checkpoint can be verified.
	CheckpointVerifierKeys []string
	// Ceilings are the server-wide limits on tools: per-call memory,
	// timeout, stdout, stderr, pool size and the memory budget of all
	// instances alive at once (see tools.Ceilings for each default). Only
	// the operator sets them; an uploaded manifest above one is refused.
	Ceilings tools.Ceilings
	// ModuleLimits are the server-wide ceilings every module is read
	// against at registration, before it is compiled (module size,
	// counts, locals, body size, nesting, table entries, compile time;
	// see tools.ModuleLimits for each default). Only the operator sets them.
	ModuleLimits tools.ModuleLimits
	// MaxStepsPerRun caps the steps of any run: a program whose max_steps
	// is above it is refused, and every run stops BUDGET_EXCEEDED at it,
	// max_steps or not (NANO_VM_MCP_MAX_STEPS); default
	// DefaultMaxStepsPerRun.
	MaxStepsPerRun int
	// HTTPClient performs tools' nanovm.http_request; nil means a default
	// client.
	HTTPClient *http.Client
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Clock and IDs are hooks for hermetic tests; nil means the real clock
	// and random UUIDv4 ids.
	Clock kernel.Clock
	IDs   kernel.IDSource
	// TracerProvider makes the spans of runs, steps, tool calls and llm
	// calls (see telemetry.go). nil or the no-op provider (what
	// telemetry.FromEnv returns with no OTEL_* exporter configured) means
	// no spans, and then nothing on a run's path is wrapped for them.
	TracerProvider trace.TracerProvider
	// Metrics receives the runtime's counters and histograms; nil means a
	// new telemetry.NewMetrics(), returned by Runtime.Metrics.
	Metrics *telemetry.Metrics
}

// DefaultMaxStepsPerRun is the default of Config.MaxStepsPerRun: far more
// than any bounded program here needs, few enough that a run committing a
// step at a time ends within minutes.
const DefaultMaxStepsPerRun = 100_000

// Runtime is the governed runtime: it runs programs under the policy, with
// sandboxed tools, persisting every step and its envelope before the next
// step starts. It is safe for concurrent use.
type Runtime struct {
	cfg      Config
	log      *slog.Logger
	store    runtimeStore
	vault    *store.Vault
	host     *tools.Host
	registry *tools.Registry
	policy   *Policy
	executor kernel.ToolExecutor
	clock    kernel.Clock
	ids      kernel.IDSource

	// programs caches validated programs by their canonical hash: a
	// validated program is read-only, and re-validating one for every
	// resume, replay and trace read is the bulk of their cost.
	programs       sync.Map // hash → *kernel.Program
	cachedPrograms atomic.Int64
	// parsed caches what load derives from a program's bytes (validation,
	// canonical form, hash), keyed by the SHA-256 of the bytes as given:
	// clients send the same program again and again.
	parsed       sync.Map // [32]byte → *parsedProgram
	cachedParsed atomic.Int64
	// lastParsed is the program parse returned last, found again by
	// comparing its bytes before they are hashed.
	lastParsed atomic.Pointer[lastProgram]

	// cpOrigin and cpVerifier are the checkpoint origin and the trusted
	// verifier keys (nil: none configured); see initCheckpoints.
	cpOrigin   string
	cpVerifier *checkpoint.Verifier

	// toolsChanged are called after a registration or removal through
	// this runtime (OnToolsChanged).
	toolsChanged []func()

	// replica is set when the store is shared by replicas (LeaseStore).
	replica *replica
	// tracer makes the runtime's spans; nil when tracing is off.
	tracer trace.Tracer
	// metrics are never nil once Open returned.
	metrics *telemetry.Metrics

	mu      sync.Mutex
	flights map[string]*flight     // idempotency key → run in progress here
	active  map[string]bool        // execution id → running in this process
	leases  map[string]store.Lease // execution id → its lease, on a shared store
	closed  bool
	wg      sync.WaitGroup
}

// Open opens the store, loads the policy and the vault key, starts the
// tool host and registers the bundled tools and the tools folder.
func Open(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.DBPath == "" {
		cfg.DBPath = "nano_vm_mcp.db"
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = store.DefaultIdempotencyTTL
	}
	if cfg.MaxStepsPerRun <= 0 {
		cfg.MaxStepsPerRun = DefaultMaxStepsPerRun
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = DefaultLeaseTimeout
	}
	rt := &Runtime{cfg: cfg, log: cfg.Logger, flights: map[string]*flight{}, active: map[string]bool{}, leases: map[string]store.Lease{}}
	if rt.log == nil {
		rt.log = slog.Default()
	}
	rt.clock = cfg.Clock
	if rt.clock == nil {
		rt.clock = kernel.SystemClock{}
	}
	rt.ids = cfg.IDs
	if rt.ids == nil {
		rt.ids = uuidV7{}
	}
	rt.metrics = cfg.Metrics
	if rt.metrics == nil {
		rt.metrics = telemetry.NewMetrics()
	}
	if !telemetry.IsNoop(cfg.TracerProvider) {
		rt.tracer = cfg.TracerProvider.Tracer(tracerName)
	}

	var err error
	if cfg.PolicyPath != "" {
		if rt.policy, err = LoadPolicy(cfg.PolicyPath); err != nil {
			return nil, err
		}
	} else {
		rt.policy = DefaultPolicy()
		rt.log.Warn("no policy file: every bundled and operator tool may run with the capabilities its manifest asks for, uploaded tools with the uploads default (nanovm:log only); set NANO_VM_MCP_POLICY to restrict them")
	}
	for _, w := range rt.policy.Warnings() {
		rt.log.Warn("policy: " + w)
	}

	if err := rt.initCheckpoints(); err != nil {
		return nil, err
	}

	shared := postgres.IsDSN(cfg.DBPath)
	if shared {
		db, err := postgres.Open(ctx, cfg.DBPath, nil)
		if err != nil {
			return nil, err
		}
		rt.store = db
	} else {
		opts := store.DefaultOptions()
		opts.NoSync = cfg.NoSync
		opts.OnCommit = rt.metrics.Commit
		db, err := store.Open(cfg.DBPath, opts)
		if err != nil {
			return nil, err
		}
		rt.store = db
	}
	fail := func(err error) (*Runtime, error) {
		rt.closeAll(context.Background())
		return nil, err
	}
	key := cfg.VaultKey
	if key == nil {
		var ok bool
		if key, ok, err = store.KeyFromEnv(); err != nil {
			return fail(err)
		}
		if !ok && shared {
			return fail(fmt.Errorf("open %s: a database replicas share keeps no key file beside it: set %s (64 hex digits or base64 of 32 bytes), the same on every replica", postgres.Redact(cfg.DBPath), store.VaultKeyEnv))
		}
		if !ok {
			if key, err = store.LoadOrCreateKeyFile(cfg.DBPath + ".vault-key"); err != nil {
				return fail(err)
			}
		}
	}
	if kc, ok := rt.store.(store.KeyCheckStore); ok {
		if err := store.CheckVaultKey(ctx, kc, key); err != nil {
			return fail(fmt.Errorf("open %s: %w", postgres.Redact(cfg.DBPath), err))
		}
	}
	if rt.vault, err = store.NewVault(rt.store, key); err != nil {
		return fail(err)
	}
	if ls, ok := rt.store.(store.LeaseStore); ok {
		if rt.replica, err = rt.startReplica(ctx, ls); err != nil {
			return fail(err)
		}
	}
	if n, err := rt.store.PurgeExpired(ctx); err != nil {
		return fail(err)
	} else if n > 0 {
		rt.log.Info("purged expired idempotency keys", "count", n)
	}

	cacheDir := cfg.CacheDir
	switch {
	case cacheDir == "" && shared:
		// Compiled code is cached per replica, in the user's cache.
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "nano-vm-mcp", "wasm-cache")
		} else {
			cacheDir = ""
		}
	case cacheDir == "":
		cacheDir = cfg.DBPath + ".wasm-cache"
	case cacheDir == "-":
		cacheDir = ""
	}
	if rt.host, err = tools.NewHost(ctx, tools.HostOptions{
		CacheDir:       cacheDir,
		ProtectedPaths: protectedPaths(cfg.DBPath, cacheDir, cfg.EnvFile),
		ConfigPaths:    configPaths(cfg.PolicyPath, cfg.ToolsDir),
		Secrets:        secretResolver{rt.vault},
		HTTPClient:     cfg.HTTPClient,
		Ceilings:       cfg.Ceilings,
		ModuleLimits:   cfg.ModuleLimits,
		Logger:         rt.log,
	}); err != nil {
		return fail(err)
	}
	c := rt.host.Ceilings()
	rt.log.Info("ceilings", "call_memory_mib", c.CallMemoryMiB, "call_timeout", c.CallTimeout, "stdout_bytes", c.StdoutBytes,
		"stderr_bytes", c.StderrBytes, "pool_size", c.PoolSize, "memory_budget_mib", c.MemoryBudgetMiB, "calls_in_flight", c.CallsInFlight, "calls_in_flight_per_session", c.CallsInFlightPerSession, "upload_bytes", c.UploadBytes, "max_steps", cfg.MaxStepsPerRun)
	rt.registry = tools.NewRegistry(rt.host, rt.store, tools.RegistryOptions{Grants: rt.policy})
	rt.registerMetrics()
	rt.executor = &governedExecutor{rt: rt, inner: executor.New(rt.registry, executor.WithProjection(rt.toolProjection))}
	if !cfg.NoBundledTools {
		mods, err := wasmtools.Bundled()
		if err != nil {
			return fail(err)
		}
		for _, m := range mods {
			rt.installStartupTool(ctx, store.SourceBundled, "bundled", m.Name, m.Manifest, m.Wasm)
		}
	}
	if cfg.ToolsDir != "" {
		if err := rt.loadToolsDir(ctx, cfg.ToolsDir); err != nil {
			return fail(err)
		}
	}
	return rt, nil
}

// protectedPaths are the files the server keeps beside its database, which
// no tool may mount, whoever configured the mount: the database, its vault
// key (whether or not the key comes from the environment this time), the
// compilation cache, the shared-serving socket and its election lock
// (internal/primary's SocketPath and LockPath), the operator token
// (OperatorTokenPath), which would let a tool act as the operator, and the
// operator's env file.
//
// A PostgreSQL database has no files here: only the cache and the env
// file are protected then.
func protectedPaths(dbPath, cacheDir, envFile string) []string {
	var ps []string
	if !postgres.IsDSN(dbPath) {
		ps = []string{dbPath, dbPath + ".vault-key", dbPath + ".sock", dbPath + ".sock.lock", dbPath + ".operator-token"}
	}
	ps = append(ps, UploadDir(dbPath))
	for _, p := range []string{cacheDir, envFile} {
		if p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// configPaths are the operator's trust anchors no tool may mount
// writable: the policy file and the tools folder, which decide at the next
// start which tools run as the operator's and with what.
func configPaths(policy, toolsDir string) []string {
	var ps []string
	for _, p := range []string{policy, toolsDir} {
		if p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// installStartupTool registers a tool found at start-up (bundled, or the
// operator's tools folder) unless that exact version is already current
// from the same source, logging (not failing) when the policy or the
// sandbox refuses it: one bad tool must not keep the server down. An
// upload of the same name, even of the same module, is replaced: the
// operator's tool wins at every start.
func (rt *Runtime) installStartupTool(ctx context.Context, src store.ToolSource, origin, name string, manifest, wasm []byte) {
	m, err := tools.ParseManifest(manifest)
	if err != nil {
		rt.metrics.RegistrationRefused(string(src))
		rt.log.Warn("tool "+name+" not registered", "from", origin, "reason", err)
		return
	}
	if rt.registry.IsPlugin(wasm) { // an Extism plugin: the tools it describes
		if _, err := rt.registry.RegisterPlugin(ctx, src, m, wasm); err != nil {
			rt.metrics.RegistrationRefused(string(src))
			rt.log.Warn("plugin "+name+" not registered", "from", origin, "reason", err)
		}
		return
	}
	sum := sha256.Sum256(wasm)
	if cur, err := rt.store.Tool(ctx, name); err == nil && cur.ModuleSHA256 == hex.EncodeToString(sum[:]) && cur.EffectiveSource() == src {
		if msum, err := tools.ManifestSHA256(&m); err == nil && msum == cur.ManifestSHA256 {
			return
		}
	}
	if _, err := rt.registry.RegisterAs(ctx, src, m, wasm); err != nil {
		rt.metrics.RegistrationRefused(string(src))
		rt.log.Warn("tool "+name+" not registered", "from", origin, "reason", err)
	}
}

// loadToolsDir registers every tool folder in dir: <dir>/<tool>/ holding
// manifest.json and one .wasm file (see ReadToolFolder). Whatever it
// skips it logs at warn, one line each, naming the folder and the reason.
func (rt *Runtime) loadToolsDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("load tools folder: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			if strings.HasSuffix(name, ".wasm") {
				rt.log.Warn("tools folder: skipped "+name+": a tool is a folder holding manifest.json and one .wasm file", "tools_dir", dir)
			}
			continue
		}
		manifest, wasm, _, err := ReadToolFolder(filepath.Join(dir, name))
		if err != nil {
			rt.log.Warn("tools folder: skipped "+name, "tools_dir", dir, "reason", err)
			continue
		}
		rt.installStartupTool(ctx, store.SourceOperator, dir, name, manifest, wasm)
	}
	return nil
}

// PurgeExpired deletes idempotency keys past their retention. Claims
// ignore expired keys anyway; purging keeps the file from growing. Open
// purges once; a long-running server calls this periodically.
func (rt *Runtime) PurgeExpired(ctx context.Context) (int, error) { return rt.store.PurgeExpired(ctx) }

// Policy returns the frozen policy snapshot.
func (rt *Runtime) Policy() *Policy { return rt.policy }

// Store returns the underlying store, for the CLI's read-only commands.
func (rt *Runtime) Store() store.Store { return rt.store }

// Close waits for runs in progress to stop (their context is the caller's:
// cancel it first for a fast shutdown; they are left resumable), then
// closes the tool host and the store.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil
	}
	rt.closed = true
	rt.mu.Unlock()
	if rt.replica != nil {
		// The runs taken over have no caller to cancel them.
		rt.replica.cancelRuns()
	}
	rt.wg.Wait()
	return rt.closeAll(context.Background())
}

func (rt *Runtime) closeAll(ctx context.Context) error {
	var errs []error
	if rt.replica != nil {
		rt.replica.stop()
	}
	if rt.host != nil {
		errs = append(errs, rt.host.Close(ctx))
	}
	if rt.store != nil {
		errs = append(errs, rt.store.Close())
	}
	return errors.Join(errs...)
}

// uuidV7 makes trace ids as time-ordered UUIDs (RFC 9562 version 7): still
// unique and opaque, but consecutive runs land next to each other in the
// store's B+trees instead of scattering writes (RATIONALE.md, "Why UUIDv7
// trace ids?").
type uuidV7 struct{}

func (uuidV7) NewID() string {
	id, err := uuid.NewV7FromReader(&idRandom)
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// idRandom hands out crypto/rand bytes read 512 at a time: a trace id
// takes 16, and one read of the system's generator serves 32 of them.
var idRandom randomPool

// randomPool is an io.Reader over crypto/rand that reads ahead.
type randomPool struct {
	mu   sync.Mutex
	buf  [512]byte
	left int // unread bytes, at the end of buf
}

func (p *randomPool) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(b) {
		if p.left == 0 {
			if _, err := rand.Read(p.buf[:]); err != nil {
				return n, err
			}
			p.left = len(p.buf)
		}
		start := len(p.buf) - p.left
		c := copy(b[n:], p.buf[start:])
		// Bytes handed out are cleared: none is in memory twice.
		clear(p.buf[start : start+c])
		p.left -= c
		n += c
	}
	return n, nil
}

// secretResolver lets tools resolve vault refs through the vault.
type secretResolver struct{ v *store.Vault }

func (s secretResolver) ResolveSecret(ctx context.Context, _ string, ref string) (string, error) {
	return s.v.Resolve(ctx, ref)
}

// noState is the state a tool granted no state keys sees: empty, shared
// by every such call, never written.
var noState = map[string]any{}

// toolProjection is what a tool may see of state beyond its args: the
// TOOL projection, limited to the keys the policy grants that tool.
func (rt *Runtime) toolProjection(tool executor.ToolID, state map[string]any) map[string]any {
	keys := rt.policy.StateKeys(tool.Name, tool.Source, tool.ModuleSHA256, tool.SignerID)
	if len(keys) == 0 {
		// Shared: the executor and the sandbox only read what this
		// returns (executor.ProjectFunc).
		return noState
	}
	return projection.ProjectState(state, projection.Tool, projection.Options{Refs: rt.vault, ToolKeys: keys})
}

// governedExecutor is the policy gate in front of the sandbox: a call of a
// tool the policy does not allow never reaches the registry.
type governedExecutor struct {
	rt    *Runtime
	inner kernel.ToolExecutor
}

func (g *governedExecutor) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	name, _, _ := strings.Cut(call.Tool, "@")
	if !g.rt.policy.Allowed(name) {
		g.rt.metrics.ToolCall(name, "denied", 0)
		return kernel.ToolResult{}, &DeniedError{Tools: []string{name}}
	}
	start := time.Now()
	res, err := g.inner.Execute(ctx, call)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	g.rt.metrics.ToolCall(name, outcome, time.Since(start))
	return res, err
}
