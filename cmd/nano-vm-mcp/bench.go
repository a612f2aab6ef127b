package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark"
	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// benchReport is what `bench --json` prints.
type benchReport struct {
	Date        string                 `json:"date"`
	Machine     benchmark.MachineInfo  `json:"machine"`
	Items       int                    `json:"items"`
	Concurrency int                    `json:"concurrency"`
	Durability  string                 `json:"durability"`
	Results     []benchmark.Result     `json:"results"`
	Audit       *benchmark.AuditReport `json:"audit,omitempty"`
	// OK is true when every invariant held and the audit chain verified.
	OK bool `json:"ok"`
}

// errBenchInvariants is returned when a run broke an invariant or the
// audit chain did not verify: the figures are then not to be trusted.
var errBenchInvariants = errors.New("benchmark invariants broken")

// cmdBench runs the original's benchmark workloads through the real path
// and prints a table (or JSON) of throughput, latency, memory and
// envelopes. It exits non-zero when any run broke an invariant.
func cmdBench(cmd *command, args []string, cio *cliIO) error {
	fs := newCommandFlags(cmd)
	scenario := fs.String("scenario", "all", "comma-separated scenarios: names, groups or ids (refund, parallel, roundtrip, envelope, replay, long, toolcall, BM-INT-01, …)")
	items := fs.Int("items", benchmark.DefaultItems, "work items per scenario (the long horizon runs items/1000 programs of 1,000 steps, at least 1)")
	conc := fs.Int("concurrency", benchmark.DefaultConcurrency, "goroutines pulling items (the round trip and the long horizon are sequential)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	db := fs.String("db", "", "database file, or a postgres:// address: the scenarios then run on a fresh database created on that server and dropped after; default a fresh temporary file, deleted after (NANO_VM_MCP_DB is ignored: a benchmark never writes to the real database)")
	keep := fs.Bool("keep", false, "keep the --db file and the round-trip stores beside it (on PostgreSQL: the fresh database)")
	noSync := fs.Bool("no-sync", false, "skip fsync in the runtime's store, to compare (NANO_VM_MCP_NO_SYNC=1)")
	pipeline := fs.Bool("pipeline", false, "pipeline pure steps' commits, as serve --pipeline does (NANO_VM_MCP_PIPELINE=1)")
	cacheDir := fs.String("cache-dir", "", "compiled tool code cache, shared across runs; \"-\" disables it (NANO_VM_MCP_CACHE_DIR; default the user cache dir)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed phases (set-up and checks left out) to this file; with several scenarios, one file each, FILE.<scenario>")
	pos, err := parseFlags(cmd, fs, args, nil, cio)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("bench takes no arguments, got %q", pos[0])
	}
	if *items <= 0 || *conc <= 0 {
		return usagef("--items and --concurrency must be positive")
	}
	if !*noSync {
		v := strings.ToLower(env("NO_SYNC"))
		*noSync = v == "1" || v == "true" || v == "yes"
	}
	if !*pipeline {
		v := strings.ToLower(env("PIPELINE"))
		*pipeline = v == "1" || v == "true" || v == "yes"
	}
	sel, err := benchmark.Select(*scenario)
	if err != nil {
		return usagef("--scenario: %v", err)
	}
	cache := benchCacheDir(*cacheDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(cio.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	e, err := benchmark.Open(ctx, benchmark.Config{DBPath: *db, Keep: *keep, NoSync: *noSync, PipelinePureSteps: *pipeline, CacheDir: cache, Logger: logger})
	if err != nil {
		return err
	}
	defer e.Close()

	rep := benchReport{
		Date: time.Now().UTC().Format(time.RFC3339), Machine: benchmark.Machine(),
		Items: *items, Concurrency: *conc, Durability: e.Durability(), OK: true,
	}
	if *keep && postgres.IsDSN(*db) {
		fmt.Fprintf(cio.stderr, "bench: keeping the database %s\n", postgres.Redact(e.DBPath()))
	}
	if *pipeline {
		rep.Durability += ", pure steps pipelined"
	}
	bar := newBenchBar(cio.stderr)
	for _, s := range sel {
		opts := benchmark.Options{Items: *items, Concurrency: *conc}
		var prof *profileTimer
		if *cpuProfile != "" {
			path := *cpuProfile
			if len(sel) > 1 {
				path += "." + s.Name
			}
			if prof, err = newProfileTimer(path); err != nil {
				return fmt.Errorf("bench: cpu profile: %w", err)
			}
			opts.Timer = prof
		}
		if bar.on {
			opts.Progress = func(done, total int) { bar.draw(s.Name, done, total) }
		}
		r, err := e.Run(ctx, s, opts)
		bar.clear()
		if prof != nil {
			if cerr := prof.close(); cerr != nil && err == nil {
				err = fmt.Errorf("cpu profile: %w", cerr)
			}
		}
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		rep.Results = append(rep.Results, r)
		rep.OK = rep.OK && r.OK()
	}
	audit, err := e.Audit(ctx)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep.Audit = &audit
	rep.OK = rep.OK && audit.OK

	if *asJSON {
		if err := printJSON(cio.stdout, rep); err != nil {
			return err
		}
	} else {
		printBenchTable(cio.stdout, &rep)
	}
	if !rep.OK {
		return errBenchInvariants
	}
	return nil
}

// profileTimer profiles a scenario's timed phase: Run starts and stops
// its Timer around it, so set-up and the invariant checks stay out of the
// profile.
type profileTimer struct {
	f  *os.File
	on bool
}

func newProfileTimer(path string) (*profileTimer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &profileTimer{f: f}, nil
}

// StartTimer starts the profile the first time; Run starts the timer
// once, for the measured phase.
func (p *profileTimer) StartTimer() {
	if p.on || p.f == nil {
		return
	}
	if err := pprof.StartCPUProfile(p.f); err == nil {
		p.on = true
	}
}

// StopTimer ends the profile once it has run.
func (p *profileTimer) StopTimer() {
	if p.on {
		pprof.StopCPUProfile()
		p.on = false
		p.f.Close()
		p.f = nil
	}
}

func (p *profileTimer) close() error {
	p.StopTimer()
	if p.f != nil {
		return p.f.Close()
	}
	return nil
}

// benchCacheDir resolves the compilation cache: the flag, the environment,
// then a folder in the user's cache directory, so repeated runs skip
// compiling the bundled tools. "-" (or no user cache dir) compiles in
// memory.
func benchCacheDir(flagValue string) string {
	dir := flagValue
	if dir == "" {
		dir = env("CACHE_DIR")
	}
	if dir == "-" {
		return ""
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(base, "nano-vm-mcp", "wasm-cache")
	}
	return dir
}

// printBenchTable prints the human-readable report: one row per scenario,
// then the audit and the invariants.
func printBenchTable(w io.Writer, rep *benchReport) {
	m := rep.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(w, "nano-vm-mcp bench — %s, %d CPU(s) %s, %s %s/%s; %s; items %d, concurrency %d\n\n",
		rep.Date[:10], m.CPUs, cpu, m.GoVersion, m.OS, m.Arch, rep.Durability, rep.Items, rep.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "id\tscenario\titems\tconc\tthroughput\tCPU µs/item\tcores\tGC\tallocs/item\tp50 ms\tp95 ms\tp99 ms\tpeak RSS\tenvelopes\ttarget\toriginal\t")
	for i := range rep.Results {
		r := &rep.Results[i]
		target := "—"
		if r.TargetMet != nil {
			target = "met"
			if !*r.TargetMet {
				target = "MISSED"
			}
			target += " (" + r.Target + ")"
		}
		orig := r.Original
		if orig == "" {
			orig = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s %s/s\t%s\t%.2f\t%.0f %%\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n",
			r.ID, r.Name, r.Items, r.Concurrency, humanRate(r.Throughput), r.Unit,
			cpuPerItem(r), r.CPUCores, 100*r.GCShare, humanRate(r.AllocsPerItem),
			ms(r.P50MS), ms(r.P95MS), ms(r.P99MS), rss(r), r.Envelopes, target, orig)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for i := range rep.Results {
		if r := &rep.Results[i]; r.ServerCPU != "" {
			fmt.Fprintf(w, "server CPU: %s: %s ms/item (%s)\n", r.Name, ms(r.ServerCPUMSPerItem), r.ServerCPU)
		}
	}
	if a := rep.Audit; a != nil {
		if a.OK {
			fmt.Fprintf(w, "audit: chain verified, %d envelope(s), one per step counted (head seq %d)\n", a.Checked, a.HeadSeq)
		} else {
			fmt.Fprintf(w, "audit: FAILED: %s\n", a.Problem)
		}
	}
	broken := 0
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.OK() {
			continue
		}
		broken++
		fmt.Fprintf(w, "invariants: %s: %d violation(s)\n", r.Name, r.ViolationsTotal)
		for _, v := range r.Violations {
			fmt.Fprintf(w, "  %s\n", v)
		}
	}
	if broken == 0 {
		fmt.Fprintln(w, "invariants: held in every run (statuses, paths, unique step ids, one envelope per successful step)")
	}
}

// cpuPerItem prints the CPU per item with its unit ("385 /program").
func cpuPerItem(r *benchmark.Result) string {
	if r.CPUSeconds == 0 {
		return "n/a"
	}
	return humanRate(r.CPUMicrosPerItem) + " /" + r.ItemUnit
}

// humanRate prints a rate with thousands separators and no false
// precision.
func humanRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return jsonlimit.Group(int(v + 0.5))
}

func ms(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// rss prints the peak, with the growth for the long horizon, whose target
// is about growth: the largest one program caused, and over the scenario.
func rss(r *benchmark.Result) string {
	if r.PeakRSSMB == 0 {
		return "n/a"
	}
	if r.Name == "long" {
		return fmt.Sprintf("%.0f MB (+%.0f/program, +%.0f in all)", r.PeakRSSMB, r.ItemRSSGrowthMB, r.RSSGrowthMB)
	}
	return fmt.Sprintf("%.0f MB", r.PeakRSSMB)
}

// benchBar draws per-scenario progress on a terminal, and nothing
// elsewhere, so pipes and CI logs stay clean.
type benchBar struct {
	w  io.Writer
	on bool
}

func newBenchBar(w io.Writer) *benchBar {
	f, ok := w.(*os.File)
	if !ok {
		return &benchBar{w: w}
	}
	st, err := f.Stat()
	return &benchBar{w: w, on: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (b *benchBar) draw(name string, done, total int) {
	const width = 30
	filled := width * done / max(total, 1)
	fmt.Fprintf(b.w, "\r%-18s [%s%s] %d/%d", name, strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
}

func (b *benchBar) clear() {
	if b.on {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
