package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/runtime/mcpserver"
	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/store/postgres"

	"github.com/nanovm/nano-vm-mcp/tools"
	"go.opentelemetry.io/otel/trace"
)

type cliIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	mu     sync.Mutex
	warned map[string]bool // see once
}

// once reports whether key is seen for the first time by this
// invocation of run: one process, as main calls run once.
func (cio *cliIO) once(key string) bool {
	cio.mu.Lock()
	defer cio.mu.Unlock()
	if cio.warned[key] {
		return false
	}
	if cio.warned == nil {
		cio.warned = map[string]bool{}
	}
	cio.warned[key] = true
	return true
}

// usageError is a mistake in the command line: exit code 2. cmd, when
// set, is the command whose --help the message points to.
type usageError struct {
	msg string
	cmd *command
}

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

// exitCode prints err (if any) and returns the process exit code: 0 ok,
// 1 failure, 2 bad usage, 3 a program that ran but did not succeed.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		var ue usageError
		errors.As(err, &ue)
		help := "nano-vm-mcp"
		if ue.cmd != nil {
			help = ue.cmd.path()
		}
		fmt.Fprintf(stderr, "nano-vm-mcp: %v\nRun \"%s --help\" for usage.\n", err, help)
		return 2
	case errors.As(err, new(runFailed)):
		fmt.Fprintf(stderr, "nano-vm-mcp: %v\n", err)
		return 3
	}
	if e, ok := runtime.AsError(err); ok {
		fmt.Fprintf(stderr, "nano-vm-mcp: %s: %s\n", e.Code, e.Message)
		return 1
	}
	fmt.Fprintf(stderr, "nano-vm-mcp: %v\n", err)
	return 1
}

// runFailed reports a program that ran to a status other than success.
type runFailed struct {
	status kernel.Status
	msg    string
}

func (e runFailed) Error() string {
	if e.msg == "" {
		return "program ended " + string(e.status)
	}
	return fmt.Sprintf("program ended %s: %s", e.status, e.msg)
}

// env reads NANO_VM_MCP_<name>.
func env(name string) string { return os.Getenv("NANO_VM_MCP_" + name) }

func envOr(name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

// common holds the flags every command shares.
type common struct {
	// cmd is the command being run; cio its streams.
	cmd *command
	cio *cliIO
	// shared names the flags register added, for --help.
	shared map[string]bool

	db, policy, toolsDir, envFile, llmModel, cacheDir, logLevel string
	// serving: this is serve, a serving replica on a shared database.
	serving bool
	// level is logLevel parsed; log is the logger built on it (see logger).
	level slog.Level
	log   *slog.Logger
	// prepared: the database's folder exists (see prepareDB); firstRun
	// lists what the first run created, for reportCreated.
	prepared                              bool
	firstRun                              []created
	noUpload, noSync, noBundled, pipeline bool
	// insecure are the registries reached over plain HTTP: tool pull's and
	// push's --insecure-registry, else NANO_VM_MCP_INSECURE_REGISTRIES.
	insecure stringList
	// cp, when set, configures signed checkpoints (serve and audit).
	cp *checkpointFlags
	// expose says which registered tools serve lists as MCP tools
	// (--expose-tools; serve only).
	expose mcpserver.ExposeTools
	// limits are the ceiling flags as given (flag or environment), parsed
	// into ceilings and maxSteps by parse.
	limits       [numCeilingFlags]string
	ceilings     tools.Ceilings
	moduleLimits tools.ModuleLimits
	maxSteps     int
	// tracing is the tracer provider the OTEL_* variables configured
	// (serve only); nil means no spans.
	tracing *telemetry.Tracing
	// metricsListen is --metrics-listen (serve only): "" serves /metrics
	// only on the HTTP transport, behind its auth.
	metricsListen string
}

// tracerProvider is c.tracing's provider, nil when there is none.
func (c *common) tracerProvider() trace.TracerProvider {
	if c.tracing == nil {
		return nil
	}
	return c.tracing.Provider
}

// ceilingFlags are the operator's server-wide ceilings: flag, environment
// variable (NANO_VM_MCP_<env>), help, and where the parsed value goes.
var ceilingFlags = [numCeilingFlags]struct {
	flag, env, help, def string
	set                  func(c *common, v string) error
}{
	{"max-call-memory-mib", "MAX_CALL_MEMORY_MIB", "ceiling on one tool call's memory, MiB; manifests asking more are refused", "512", intCeiling(func(c *common) *int { return &c.ceilings.CallMemoryMiB })},
	{"max-call-timeout", "MAX_CALL_TIMEOUT", "ceiling on one tool call's time, e.g. 30s", "5m", durationCeiling(func(c *common) *time.Duration { return &c.ceilings.CallTimeout })},
	{"max-stdout-bytes", "MAX_STDOUT_BYTES", "ceiling on one tool call's result, bytes", "16777216", intCeiling(func(c *common) *int { return &c.ceilings.StdoutBytes })},
	{"max-stderr-bytes", "MAX_STDERR_BYTES", "ceiling on one tool call's log, bytes", "1048576", intCeiling(func(c *common) *int { return &c.ceilings.StderrBytes })},
	{"max-pool-size", "MAX_POOL_SIZE", "ceiling on one pooled tool's warm instances", "16", intCeiling(func(c *common) *int { return &c.ceilings.PoolSize })},
	{"memory-budget-mib", "MEMORY_BUDGET_MIB", "memory of all tool instances alive at once, MiB; a call past it fails", "2048, or half the memory when less", intCeiling(func(c *common) *int { return &c.ceilings.MemoryBudgetMiB })},
	{"max-calls-in-flight", "MAX_CALLS_IN_FLIGHT", "tool calls running at once, every tool together; a call past it waits within its timeout (each may hold up to 192 MiB of call stack outside the memory budget)", "half the memory / 192 MiB, 4 to 64", intCeiling(func(c *common) *int { return &c.ceilings.CallsInFlight })},
	{"max-calls-in-flight-per-session", "MAX_CALLS_IN_FLIGHT_PER_SESSION", "tool calls one MCP session may have running at once, so one client cannot hold them all; a call past it waits within its timeout (calls without a session, as over stateless HTTP or the 2026-07-28 protocol, count against --max-calls-in-flight only)", "three quarters of --max-calls-in-flight", intCeiling(func(c *common) *int { return &c.ceilings.CallsInFlightPerSession })},
	{"max-upload-bytes", "MAX_UPLOAD_BYTES", "bytes uploaded tools (register_tool) may store in all, modules and manifests, kept for the audit; an upload past it is refused", "268435456", intCeiling(func(c *common) *int { return &c.ceilings.UploadBytes })},
	{"max-steps", "MAX_STEPS", "ceiling on the steps of one run; programs asking more are refused", "100000", intCeiling(func(c *common) *int { return &c.maxSteps })},
	{"max-module-bytes", "MAX_MODULE_BYTES", "ceiling on one tool module's size, bytes; larger modules are refused before they are read", "67108864", func(c *common, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive integer")
		}
		c.moduleLimits.ModuleBytes = n
		return nil
	}},
	{"compile-timeout", "COMPILE_TIMEOUT", "time one module's compilation may take at registration, e.g. 30s", "60s", durationCeiling(func(c *common) *time.Duration { return &c.moduleLimits.CompileTimeout })},
}

const numCeilingFlags = 12

func intCeiling(field func(*common) *int) func(*common, string) error {
	return func(c *common, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive integer")
		}
		*field(c) = n
		return nil
	}
}

// durationCeiling is the setter of a positive duration ceiling.
func durationCeiling(field func(*common) *time.Duration) func(*common, string) error {
	return func(c *common, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 30s")
		}
		*field(c) = d
		return nil
	}
}

// register adds the shared flags to fs. Defaults come from the
// environment, read after --env-file has been applied (see parse).
func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.db, "db", "", "bbolt database file, a missing folder created mode 0700; or postgres://… for a PostgreSQL database replicas share (NANO_VM_MCP_DB; default "+defaultDBHelp+")")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (NANO_VM_MCP_LOG_LEVEL; default info for serve, warn for the other commands)")
	fs.StringVar(&c.policy, "policy", "", "operator policy file, JSON or YAML (NANO_VM_MCP_POLICY)")
	fs.StringVar(&c.toolsDir, "tools-dir", "", "folder of tools to register at start-up (NANO_VM_MCP_TOOLS_DIR)")
	fs.StringVar(&c.envFile, "env-file", "", "read KEY=VALUE lines into the environment first (NANO_VM_MCP_ENV_FILE)")
	fs.StringVar(&c.cacheDir, "cache-dir", "", "compiled tool code cache; \"-\" disables it (NANO_VM_MCP_CACHE_DIR; default <db>.wasm-cache)")
	fs.StringVar(&c.llmModel, "llm-model", "", "provider/model for llm steps (NANO_VM_MCP_LLM_MODEL)")
	fs.BoolVar(&c.noUpload, "no-tool-upload", false, "refuse register_tool over MCP (NANO_VM_MCP_NO_TOOL_UPLOAD=1)")
	fs.BoolVar(&c.noSync, "no-sync", false, "skip fsync: survives a process crash, may lose the last commits on power loss (NANO_VM_MCP_NO_SYNC=1)")
	fs.BoolVar(&c.noBundled, "no-bundled-tools", false, "do not register the bundled tools (NANO_VM_MCP_NO_BUNDLED_TOOLS=1)")
	for i, f := range ceilingFlags {
		fs.StringVar(&c.limits[i], f.flag, "", f.help+" (NANO_VM_MCP_"+f.env+"; default "+f.def+")")
	}
	fs.BoolVar(&c.pipeline, "pipeline", false, "let a run go on while its steps are made durable, waiting before llm steps and tools that reach the network or files (NANO_VM_MCP_PIPELINE=1)")
}

// parse parses args with fs, allowing flags after positional arguments,
// applies --env-file, then fills unset shared flags from the environment.
func (c *common) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseFlags(c.cmd, fs, args, c.shared, c.cio)
	if err != nil {
		return nil, err
	}
	if c.envFile == "" {
		c.envFile = env("ENV_FILE")
	}
	if c.envFile != "" {
		if err := loadEnvFile(c.envFile); err != nil {
			return nil, err
		}
	}
	fill := func(p *string, name, def string) {
		if *p == "" {
			*p = envOr(name, def)
		}
	}
	fill(&c.db, "DB", "")
	if c.db == "" {
		if c.db, err = defaultDBPath(); err != nil {
			return nil, err
		}
	}
	if !postgres.IsDSN(c.db) {
		c.db = expandHome(c.db)
	}
	def := "warn"
	if c.cmd != nil && c.cmd.logLevel != "" {
		def = c.cmd.logLevel
	}
	fill(&c.logLevel, "LOG_LEVEL", def)
	if err := c.level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usagef("--log-level (NANO_VM_MCP_LOG_LEVEL) %q: want debug, info, warn or error", c.logLevel)
	}
	fill(&c.policy, "POLICY", "")
	fill(&c.toolsDir, "TOOLS_DIR", "")
	fill(&c.llmModel, "LLM_MODEL", "")
	fill(&c.cacheDir, "CACHE_DIR", "")
	for i, f := range ceilingFlags {
		fill(&c.limits[i], f.env, "")
		if c.limits[i] == "" {
			continue
		}
		if err := f.set(c, c.limits[i]); err != nil {
			return nil, usagef("--%s (NANO_VM_MCP_%s) %q: %v", f.flag, f.env, c.limits[i], err)
		}
	}
	flagOn := func(p *bool, name string) {
		if !*p {
			v := strings.ToLower(env(name))
			*p = v == "1" || v == "true" || v == "yes"
		}
	}
	flagOn(&c.noUpload, "NO_TOOL_UPLOAD")
	if len(c.insecure) == 0 {
		for _, h := range strings.Split(env("INSECURE_REGISTRIES"), ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.insecure = append(c.insecure, h)
			}
		}
	}
	flagOn(&c.noSync, "NO_SYNC")
	flagOn(&c.noBundled, "NO_BUNDLED_TOOLS")
	flagOn(&c.pipeline, "PIPELINE")
	return pos, nil
}

// loadEnvFile sets KEY=VALUE lines (# comments, optional quotes) that are
// not already set in the environment: the real environment wins.
func loadEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("env file %s line %d: want KEY=VALUE", path, n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return sc.Err()
}

// open opens the runtime the flags describe, creating the database's
// folder first and saying on stderr what the first run created. Logs go
// to stderr, at --log-level.
func (c *common) open(ctx context.Context) (*runtime.Runtime, error) {
	if err := c.prepareDB(); err != nil {
		return nil, err
	}
	c.noteMissing()
	logger := c.logger()
	cfg := runtime.Config{
		DBPath: c.db, PolicyPath: c.policy, ToolsDir: c.toolsDir, EnvFile: c.envFile, DisableToolUpload: c.noUpload, InsecureRegistries: c.insecure,
		NoSync: c.noSync, PipelinePureSteps: c.pipeline, NoBundledTools: c.noBundled, LLMModel: c.llmModel, CacheDir: c.cacheDir, Logger: logger,
		Ceilings: c.ceilings, ModuleLimits: c.moduleLimits, MaxStepsPerRun: c.maxSteps, TakeOver: c.serving,
		TracerProvider: c.tracerProvider(),
	}
	if v := env("LEASE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, usagef("NANO_VM_MCP_LEASE_TIMEOUT: want a positive duration such as 15s, not %q", v)
		}
		cfg.LeaseTimeout = d
	}
	if c.cp != nil {
		if err := c.cp.apply(&cfg); err != nil {
			return nil, err
		}
	}
	if c.llmModel != "" {
		client, err := llm.New(c.llmModel, nil)
		if err != nil {
			return nil, fmt.Errorf("llm model %q: %w", c.llmModel, err)
		}
		cfg.LLM = client
	}
	rt, err := runtime.Open(ctx, cfg)
	if err != nil {
		c.firstRun = nil
		return nil, err
	}
	c.reportCreated()
	return rt, nil
}

// jsonArg reads a JSON value given inline or as a file path.
func jsonArg(s string) (any, error) {
	data := []byte(s)
	if t := strings.TrimSpace(s); t == "" || (t[0] != '{' && t[0] != '[' && t[0] != '"') {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w (give a file or inline JSON)", s, err)
		}
		data = b
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	return v, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newFlags returns a flag set for cmd with the shared flags on it.
func newFlags(cmd *command, cio *cliIO) (*flag.FlagSet, *common) {
	fs := newCommandFlags(cmd)
	c := &common{cmd: cmd, cio: cio, shared: map[string]bool{}}
	c.register(fs)
	fs.VisitAll(func(f *flag.Flag) { c.shared[f.Name] = true })
	return fs, c
}

// parseAndOpen parses an administrative command's flags and opens the
// runtime for it, the bundled tools registered only when the command is
// about tools.
//
// When a server holds the database, the command works through it (see
// openAdmin).
func (c *common) parseAndOpen(ctx context.Context, fs *flag.FlagSet, args []string, bundled bool) ([]string, admin, error) {
	pos, err := c.parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if !bundled {
		c.noBundled = true
	}
	rt, err := c.openAdmin(ctx)
	return pos, rt, err
}
