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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
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

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

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
		if bar.on {
			opts.Progress = func(done, total int) { bar.draw(s.Name, done, total) }
		}
		r, err := e.Run(ctx, s, opts)
		bar.clear()
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
	fmt.Fprintln(tw, "id\tscenario\titems\tconc\tthroughput\tp50 ms\tp95 ms\tp99 ms\tCPU ms/item\tpeak RSS\tenvelopes\ttarget\toriginal\t")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s %s/s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n",
			r.ID, r.Name, r.Items, r.Concurrency, humanRate(r.Throughput), r.Unit,
			ms(r.P50MS), ms(r.P95MS), ms(r.P99MS), ms(r.CPUMSPerItem), rss(r), r.Envelopes, target, orig)
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

// humanRate prints a rate with thousands separators and no false
// precision.
func humanRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
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
