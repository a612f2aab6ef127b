package benchmark

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark/measure"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// DefaultConcurrency is the original's concurrency: 200 runs in flight.
const DefaultConcurrency = 200

// DefaultItems is how many items a scenario runs when Options.Items is
// zero: the original's 5,000.
const DefaultItems = 5000

// Timer is the part of *testing.B that Run drives: timing stops during
// set-up and the invariant checks, so a Go benchmark's ns/op counts only
// the measured phase.
type Timer interface {
	StartTimer()
	StopTimer()
}

// Options configures one scenario run. Zero fields take defaults.
type Options struct {
	// Items is the number of work items (programs, round trips, calls);
	// default DefaultItems. BM-INT-10 runs Items/1000 programs of 1,000
	// steps (at least 1).
	Items int
	// Concurrency is the number of goroutines pulling items; default
	// DefaultConcurrency. Sequential scenarios (BM-INT-05, -10) ignore it.
	Concurrency int
	// Progress, when set, is called with the items done so far, from one
	// goroutine, about every ProgressInterval and once at the end.
	Progress func(done, total int)
	// ProgressInterval defaults to 100ms.
	ProgressInterval time.Duration
	// Timer, when set, is stopped outside the measured phase.
	Timer Timer
}

// Result is one scenario's measurement.
type Result struct {
	// ID is the original's workload id, e.g. "BM-INT-01".
	ID string `json:"id"`
	// Name is the scenario's name, e.g. "refund".
	Name  string `json:"name"`
	Title string `json:"title"`
	// Unit is what Throughput counts per second ("programs", "ops", …).
	Unit string `json:"unit"`
	// Items is the number of items run; Ops the number of Units done.
	// ItemUnit names an item ("program", "replay", "call", "item" for a
	// round trip of four ops): what the per-item figures are per.
	ItemUnit string `json:"item_unit"`
	Items    int    `json:"items"`
	Ops      int    `json:"ops"`
	// Concurrency is the number of goroutines that pulled items.
	Concurrency int `json:"concurrency"`
	// Durability is "fsync", "no fsync", or "none" (no store involved).
	Durability string `json:"durability"`
	// Seconds is the measured phase's wall time; set-up and checks are
	// outside it.
	Seconds float64 `json:"seconds"`
	// Throughput is Ops per second of the measured phase.
	Throughput float64 `json:"throughput_per_s"`
	// P50MS, P95MS, P99MS and MaxMS are per-item latencies, end to end.
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
	// CPUSeconds is the process's CPU time (getrusage RUSAGE_SELF, user +
	// system, every thread) over the measured phase; CPUMicrosPerItem is
	// that per item (per program for the program scenarios), the figure
	// to compare on a shared machine, where wall time depends on the
	// neighbours. CPUCores is CPUSeconds over Seconds. All zero where
	// rusage is unavailable.
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUMicrosPerItem float64 `json:"cpu_us_per_item"`
	CPUCores         float64 `json:"cpu_cores"`
	// GCShare is the Go runtime's garbage-collection CPU over CPUSeconds.
	GCShare float64 `json:"gc_cpu_share"`
	// AllocsPerItem and AllocBytesPerItem are heap allocations per item
	// in the measured phase (every goroutine of the process).
	AllocsPerItem     float64 `json:"allocs_per_item"`
	AllocBytesPerItem float64 `json:"alloc_bytes_per_item"`
	// PeakRSSMB is the process's peak resident set during the scenario;
	// RSSGrowthMB is that peak minus the resident set before it.
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	RSSGrowthMB float64 `json:"rss_growth_mb"`
	// ItemRSSGrowthMB, for a scenario that measures items one at a time
	// (the long horizon), is the largest growth one item caused: its peak
	// minus the resident set just before it.
	ItemRSSGrowthMB float64 `json:"item_rss_growth_mb,omitempty"`
	// CPUMSPerItem is the process's CPU time (user + system, getrusage
	// RUSAGE_SELF) over the measured phase, per item, in ms; 0 where
	// getrusage is not available. It covers every goroutine of the
	// process, the store's included, and nothing outside the process (a
	// database server's CPU is not in it).
	CPUMSPerItem float64 `json:"cpu_ms_per_item"`
	// ServerCPUMSPerItem is, on PostgreSQL, the database server's CPU
	// (the postmaster and all its children, from /proc) over the measured
	// phase, per item, in ms; ServerCPU says whether it was measured and,
	// if not, why ("" on bbolt, which has no server).
	ServerCPUMSPerItem float64 `json:"server_cpu_ms_per_item,omitempty"`
	ServerCPU          string  `json:"server_cpu,omitempty"`
	// Commits is, on PostgreSQL, what the store's committer did over the
	// measured phase (store/postgres.CommitStats).
	Commits *CommitCounts `json:"commits,omitempty"`
	// Envelopes counts the envelopes the scenario's runs wrote (and
	// checked, one per step record).
	Envelopes int `json:"envelopes"`
	// Target is the target; TargetMet says whether this run met it
	// (nil when there is no target).
	Target    string `json:"target,omitempty"`
	TargetMet *bool  `json:"target_met,omitempty"`
	// Original is the original's figure on the same machine kind.
	Original string `json:"original,omitempty"`
	// Violations lists broken invariants (the first few); empty means
	// every run held.
	Violations      []string `json:"violations,omitempty"`
	ViolationsTotal int      `json:"violations_total,omitempty"`
}

// CommitCounts summarises store/postgres.CommitStats over a phase.
type CommitCounts struct {
	Batches int64 `json:"batches"`
	// MeanGroup is requests per batch; OneTrip the batches of one round
	// trip; Again the one-trip batches refused and run again as two.
	MeanGroup float64 `json:"mean_group"`
	OneTrip   int64   `json:"one_trip"`
	Again     int64   `json:"again"`
}

// commitCounts is the difference of two CommitStats.
func commitCounts(a, b postgres.CommitStats) *CommitCounts {
	n := b.Batches - a.Batches
	c := &CommitCounts{Batches: n, OneTrip: b.OneTrip - a.OneTrip, Again: b.Again - a.Again}
	if n > 0 {
		c.MeanGroup = float64(b.Commits-a.Commits) / float64(n)
	}
	return c
}

// OK reports whether every invariant held.
func (r *Result) OK() bool { return r.ViolationsTotal == 0 }

// Scenario describes one workload.
type Scenario struct {
	// ID is the original's workload id ("BM-INT-01"); "BM-TOOL" for the
	// tool-call microbenchmark, which the original did not have.
	ID string
	// Name is unique; Group, when set, names a family (roundtrip,
	// toolcall) that Select picks as a whole.
	Name  string
	Group string
	// Title is a short description for the table.
	Title string
	// Unit is what an op is: programs, ops, replays, steps or calls.
	Unit string
	// Original is the original's figure; Target the target.
	Original string
	Target   string

	opsPerItem int
	sequential bool
	// perItemRSS measures each item's own memory growth (sequential
	// scenarios only): the long horizon's target is per program.
	perItemRSS bool
	items      func(n int) int
	// setup prepares what items use, untimed; its envelopes count.
	setup func(ctx context.Context, e *Env, n int, chk *checker) (any, error)
	// item runs item i, timed; a returned error stops the scenario.
	item func(ctx context.Context, e *Env, st any, i int, chk *checker) error
	// verify checks the state after the timed phase, untimed.
	verify func(ctx context.Context, e *Env, st any, chk *checker) error
	met    func(r *Result) bool
}

// Scenarios returns every scenario in the order the bench command runs
// them.
func Scenarios() []Scenario { return slices.Clone(scenarios) }

// Select returns the scenarios whose ID, Name or Group matches one of the
// comma-separated names (case-insensitive), in run order; "" or "all"
// selects every scenario.
func Select(names string) ([]Scenario, error) {
	if names == "" || strings.EqualFold(names, "all") {
		return Scenarios(), nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			want[n] = true
		}
	}
	var out []Scenario
	found := map[string]bool{}
	for _, s := range scenarios {
		for _, k := range []string{s.ID, s.Name, s.Group} {
			if k = strings.ToLower(k); k != "" && want[k] {
				out = append(out, s)
				found[k] = true
				break
			}
		}
	}
	for n := range want {
		if !found[n] {
			var known []string
			for _, s := range scenarios {
				known = append(known, s.Name)
			}
			return nil, fmt.Errorf("select scenarios: no scenario %q (known: %s, or an id such as BM-INT-01)", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// Run runs one scenario on e. An error means the scenario could not run;
// broken invariants are reported in the Result.
func (e *Env) Run(ctx context.Context, s Scenario, opts Options) (Result, error) {
	stop := func() {
		if opts.Timer != nil {
			opts.Timer.StopTimer()
		}
	}
	start := func() {
		if opts.Timer != nil {
			opts.Timer.StartTimer()
		}
	}
	stop()
	defer start()

	items := opts.Items
	if items <= 0 {
		items = DefaultItems
	}
	if s.items != nil {
		items = s.items(items)
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	if s.sequential {
		conc = 1
	}
	conc = min(conc, items)
	res := Result{
		ID: s.ID, Name: s.Name, Title: s.Title, Unit: s.Unit, ItemUnit: s.itemUnit(), Items: items, Ops: items * s.opsPerItem,
		Concurrency: conc, Durability: e.durability(s), Target: s.Target, Original: s.Original,
	}
	chk := &checker{}

	var st any
	if s.setup != nil {
		var err error
		if st, err = s.setup(ctx, e, items, chk); err != nil {
			return res, fmt.Errorf("%s: set up: %w", s.Name, err)
		}
	}

	debug.FreeOSMemory()
	rssBefore := residentMB()
	resetPeak()

	lat := make([]time.Duration, items)
	var done atomic.Int64
	progressDone := e.progress(opts, &done, items)
	work := make(chan int, conc)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	// Per-item memory (sequential scenarios only, so conc is 1): each
	// item's peak over the resident set just before it; the scenario's
	// peak is the largest item peak.
	perItem := s.perItemRSS && conc == 1
	var itemPeak, itemGrowth float64
	srv0, srvErr := e.serverCPU()
	pgStore, _ := e.rt.Store().(*postgres.DB)
	var cs0 postgres.CommitStats
	if pgStore != nil {
		cs0 = pgStore.CommitStats()
	}
	start()
	u0 := readUsage()
	cpu0 := measure.ProcessCPU()
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if runCtx.Err() != nil {
					continue
				}
				var rss0 float64
				if perItem {
					rss0 = residentMB()
					resetPeak()
				}
				s0 := time.Now()
				if err := s.item(runCtx, e, st, i, chk); err != nil {
					cancel(fmt.Errorf("item %d: %w", i, err))
					continue
				}
				lat[i] = time.Since(s0)
				if perItem {
					peak := peakMB()
					itemPeak, itemGrowth = max(itemPeak, peak), max(itemGrowth, peak-rss0)
				}
				done.Add(1)
			}
		}()
	}
feed:
	for i := range items {
		select {
		case work <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(t0)
	u1 := readUsage()
	cpu := measure.ProcessCPU() - cpu0
	stop()
	if pgStore != nil && s.usesRuntimeStore() {
		res.Commits = commitCounts(cs0, pgStore.CommitStats())
	}
	if e.pg != nil && s.usesRuntimeStore() {
		srv1, err := e.serverCPU()
		if srvErr == nil {
			srvErr = err
		}
		if srvErr == nil {
			res.ServerCPU = "included: postmaster and its children, from /proc"
			res.ServerCPUMSPerItem = float64(srv1-srv0) / float64(time.Millisecond) / float64(items)
		} else {
			res.ServerCPU = "not measured: " + srvErr.Error()
		}
	}
	progressDone()

	if err := context.Cause(runCtx); err != nil {
		return res, fmt.Errorf("%s: %w", s.Name, err)
	}
	res.PeakRSSMB = peakMB()
	if perItem {
		res.PeakRSSMB, res.ItemRSSGrowthMB = itemPeak, max(itemGrowth, 0)
	}
	res.RSSGrowthMB = max(res.PeakRSSMB-rssBefore, 0)
	res.Seconds = elapsed.Seconds()
	res.Throughput = float64(res.Ops) / elapsed.Seconds()
	res.CPUMSPerItem = float64(cpu) / float64(time.Millisecond) / float64(items)
	res.P50MS, res.P95MS, res.P99MS, res.MaxMS = measure.PercentileMS(lat, 0.50), measure.PercentileMS(lat, 0.95), measure.PercentileMS(lat, 0.99), measure.PercentileMS(lat, 1)
	res.fillUsage(u0, u1)

	if s.verify != nil {
		if err := s.verify(ctx, e, st, chk); err != nil {
			return res, fmt.Errorf("%s: verify: %w", s.Name, err)
		}
	}
	res.Envelopes = chk.envelopes()
	e.addEnvelopes(res.Envelopes)
	res.Violations, res.ViolationsTotal = chk.report()
	if s.met != nil {
		ok := s.met(&res)
		res.TargetMet = &ok
	}
	return res, nil
}

// itemUnit is what one item of s is.
func (s *Scenario) itemUnit() string {
	switch {
	case s.opsPerItem != 1 && s.Unit == "steps":
		return "program" // the long horizon: one program of many steps
	case s.opsPerItem != 1:
		return "item"
	}
	return strings.TrimSuffix(s.Unit, "s")
}

func (e *Env) durability(s Scenario) string {
	side := ""
	if e.pg != nil {
		side = " (bbolt)"
	}
	switch {
	case s.Name == "roundtrip-nosync":
		return "no fsync" + side
	case s.Name == "roundtrip-fsync":
		return "fsync" + side
	case s.Group == "toolcall":
		return "none"
	}
	return e.Durability()
}

// usesRuntimeStore reports whether the scenario commits to the runtime's
// store (the round trip has stores of its own; the tool call none).
func (s Scenario) usesRuntimeStore() bool { return s.Group != "roundtrip" && s.Group != "toolcall" }

// serverCPU is the PostgreSQL server's CPU so far; an error when the Env
// is not on PostgreSQL or the server is not readable from here.
func (e *Env) serverCPU() (time.Duration, error) {
	switch {
	case e.pg == nil:
		return 0, errors.New("no database server")
	case e.pg.server == nil:
		return 0, e.pg.serverErr
	}
	return e.pg.server.Total()
}

// progress starts the progress reporter and returns the function that
// stops it after a final report.
func (e *Env) progress(opts Options, done *atomic.Int64, total int) func() {
	if opts.Progress == nil {
		return func() {}
	}
	every := opts.ProgressInterval
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	quit := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				opts.Progress(int(done.Load()), total)
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-stopped
		opts.Progress(int(done.Load()), total)
	}
}

// checker collects broken invariants and the envelopes counted, from
// concurrent items.
type checker struct {
	v    measure.Violations
	mu   sync.Mutex
	envs int
}

func (c *checker) failf(format string, args ...any) { c.v.Failf(format, args...) }

func (c *checker) addEnvelopes(n int) {
	c.mu.Lock()
	c.envs += n
	c.mu.Unlock()
}

func (c *checker) envelopes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.envs
}

func (c *checker) report() ([]string, int) { return c.v.Report() }
