// Command dbos-peer runs nano-vm-mcp's refund and long-horizon benchmark
// workloads (BM-INT-01, BM-INT-10) as DBOS Transact Go workflows on a
// PostgreSQL database, and prints throughput, latency and CPU per workflow
// in the units `nano-vm-mcp bench` prints, so the two can be compared on
// the same database and machine.
//
// It is a benchmark-only module with its own go.mod: nothing in
// nano-vm-mcp depends on it, and the repository's `go test ./...` does not
// build it. runtime/peers/run.sh runs it beside `nano-vm-mcp bench`. It
// measures (process and server CPU, percentiles, violations) with
// nano-vm-mcp's internal/benchmark/measure, through a replace of the
// repository it stands in, so the two reports count alike.
//
//	go run . --db postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//	go run . summarize A.json B.json …
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark/measure"
)

// dbosVersion is the version go.mod requires, printed in the report.
const dbosVersion = "v1.8.0"

// schema is the DBOS system schema the peer uses; it is dropped before
// each run (a fresh database, as nano-vm-mcp bench uses a fresh file) and
// after it unless --keep.
const schema = "dbos_peer_bench"

// Result is one scenario's measurement; the JSON names are those of
// nano-vm-mcp's benchmark.Result, so one summary reads both.
type Result struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Title       string  `json:"title"`
	Unit        string  `json:"unit"`
	Items       int     `json:"items"`
	Ops         int     `json:"ops"`
	Concurrency int     `json:"concurrency"`
	Durability  string  `json:"durability"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"throughput_per_s"`
	P50MS       float64 `json:"p50_ms"`
	P95MS       float64 `json:"p95_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	// CPUMSPerItem is this process's CPU (getrusage RUSAGE_SELF, user +
	// system) over the timed phase, per item, in ms.
	CPUMSPerItem float64 `json:"cpu_ms_per_item"`
	// ServerCPUMSPerItem is the PostgreSQL server's CPU (postmaster and
	// all its children, from /proc) over the timed phase, per item;
	// ServerCPU says whether it was measured, and if not why.
	ServerCPUMSPerItem float64 `json:"server_cpu_ms_per_item,omitempty"`
	ServerCPU          string  `json:"server_cpu"`
	// Steps is the durable steps the workflows recorded (rows in DBOS's
	// operation_outputs), checked against the paths they took.
	Steps           int      `json:"steps"`
	Violations      []string `json:"violations,omitempty"`
	ViolationsTotal int      `json:"violations_total,omitempty"`
}

// Report is what --json prints: the shape of `nano-vm-mcp bench --json`,
// plus System.
type Report struct {
	System      string   `json:"system"`
	Date        string   `json:"date"`
	CPUs        int      `json:"cpus"`
	GoVersion   string   `json:"go_version"`
	Server      string   `json:"server"`
	Items       int      `json:"items"`
	Concurrency int      `json:"concurrency"`
	Pool        int      `json:"pool_max_conns"`
	Durability  string   `json:"durability"`
	Results     []Result `json:"results"`
	OK          bool     `json:"ok"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "summarize" {
		if err := summarize(os.Stdout, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "dbos-peer:", err)
			os.Exit(1)
		}
		return
	}
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbos-peer:", err)
	}
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("dbos-peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", os.Getenv("NANO_VM_MCP_TEST_POSTGRES"), "PostgreSQL address (default $NANO_VM_MCP_TEST_POSTGRES, which .ci/pg.sh exports)")
	scenarios := fs.String("scenario", "refund", "comma-separated: refund (BM-INT-01), long (BM-INT-10)")
	items := fs.Int("items", 5000, "workflows for refund; long runs items/1000 workflows of 1,000 steps (at least 1)")
	conc := fs.Int("concurrency", 200, "goroutines starting workflows (long is sequential)")
	pool := fs.Int("pool", 0, "DBOS's connection pool size (pool_max_conns); 0 keeps DBOS's default (20)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	keep := fs.Bool("keep", false, "keep the DBOS schema "+schema+" after the run")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if *db == "" {
		return 2, errors.New("no database: pass --db postgres://… or set NANO_VM_MCP_TEST_POSTGRES (eval \"$(.ci/pg.sh start)\")")
	}
	if *items <= 0 || *conc <= 0 || *pool < 0 {
		return 2, errors.New("--items and --concurrency must be positive, --pool not negative")
	}
	var sel []string
	for _, s := range strings.Split(*scenarios, ",") {
		switch s = strings.TrimSpace(s); s {
		case "refund", "long":
			sel = append(sel, s)
		case "BM-INT-01":
			sel = append(sel, "refund")
		case "BM-INT-10":
			sel = append(sel, "long")
		case "", "all":
			if s == "all" {
				sel = append(sel, "refund", "long")
			}
		default:
			return 2, fmt.Errorf("--scenario: no scenario %q (refund, long)", s)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dsn := *db
	if *pool > 0 {
		u, err := url.Parse(dsn)
		if err != nil {
			return 2, fmt.Errorf("--db: %w", err)
		}
		q := u.Query()
		q.Set("pool_max_conns", fmt.Sprint(*pool))
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	admin, err := pgx.Connect(ctx, *db)
	if err != nil {
		return 1, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.Background())
	var version, fsync, syncCommit, dataDir string
	if err := admin.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'), current_setting('data_directory')`).Scan(&version, &fsync, &syncCommit, &dataDir); err != nil {
		return 1, fmt.Errorf("read server settings: %w", err)
	}
	rep := Report{
		System: "DBOS Transact Go " + dbosVersion, Date: time.Now().UTC().Format(time.RFC3339),
		CPUs: goruntime.NumCPU(), GoVersion: goruntime.Version(), Server: "PostgreSQL " + version,
		Items: *items, Concurrency: *conc, Pool: *pool, Durability: fmt.Sprintf("fsync=%s, synchronous_commit=%s", fsync, syncCommit), OK: true,
	}
	if rep.Pool == 0 {
		rep.Pool = 20
	}
	server, serverErr := measure.FindServer(dataDir)

	for _, s := range sel {
		r, err := runScenario(ctx, s, dsn, admin, *items, *conc, server, serverErr, *keep)
		if err != nil {
			return 1, fmt.Errorf("%s: %w", s, err)
		}
		r.Durability = rep.Durability
		rep.Results = append(rep.Results, r)
		rep.OK = rep.OK && r.ViolationsTotal == 0
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1, err
		}
	} else {
		printTable(stdout, &rep)
	}
	if !rep.OK {
		return 1, errors.New("invariants broken: the figures are not to be trusted")
	}
	return 0, nil
}

func dropSchema(ctx context.Context, admin *pgx.Conn) error {
	_, err := admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	return err
}

// runScenario opens a fresh DBOS on the database, runs one scenario's
// timed phase, checks it and shuts DBOS down.
func runScenario(ctx context.Context, name, dsn string, admin *pgx.Conn, items, conc int, server *measure.Server, serverErr error, keep bool) (Result, error) {
	if err := dropSchema(ctx, admin); err != nil {
		return Result{}, fmt.Errorf("drop old schema: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dctx, err := dbos.NewContext(ctx, dbos.Config{AppName: "nano-vm-mcp-peer", DatabaseURL: dsn, DatabaseSchema: schema, Logger: quiet})
	if err != nil {
		return Result{}, fmt.Errorf("dbos: %w", err)
	}
	dbos.RegisterWorkflow(dctx, refundWorkflow, dbos.WithWorkflowName("refund_pipeline"))
	dbos.RegisterWorkflow(dctx, longWorkflow, dbos.WithWorkflowName("long_horizon"))
	if err := dbos.Launch(dctx); err != nil {
		return Result{}, fmt.Errorf("dbos launch: %w", err)
	}
	defer func() {
		_ = dbos.Shutdown(dctx, 10*time.Second)
		if !keep {
			_ = dropSchema(context.Background(), admin)
		}
	}()

	r := Result{Name: name, Concurrency: conc}
	var item func(i int) (int, error) // returns the steps it recorded
	var chk measure.Violations
	switch name {
	case "refund":
		r.ID, r.Title, r.Unit, r.Items, r.Ops = "BM-INT-01", "refund pipeline (DBOS)", "programs", items, items
		item = func(i int) (int, error) {
			in, want := refundInput(i)
			out, err := runWorkflow(dctx, refundWorkflow, in)
			if err != nil {
				return 0, err
			}
			if !slices.Equal(out.Path, want) {
				chk.Failf("item %d: path %v, want %v", i, out.Path, want)
			}
			return len(out.Path), nil
		}
	case "long":
		n := max(1, items/longHorizonSteps)
		r.ID, r.Title, r.Unit, r.Items, r.Ops, r.Concurrency = "BM-INT-10", "long horizon, 1,000 steps (DBOS)", "steps", n, n*longHorizonSteps, 1
		item = func(i int) (int, error) {
			got, err := runWorkflow(dctx, longWorkflow, longHorizonSteps)
			if err != nil {
				return 0, err
			}
			if got != longHorizonSteps {
				chk.Failf("item %d: %d steps, want %d", i, got, longHorizonSteps)
			}
			return longHorizonSteps, nil
		}
	}
	r.Concurrency = min(r.Concurrency, r.Items)

	lat := make([]time.Duration, r.Items)
	var steps atomic.Int64
	work := make(chan int)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var srv0 time.Duration
	var srvErr error = serverErr
	if server != nil {
		srv0, srvErr = server.Total()
	}
	cpu0 := measure.ProcessCPU()
	t0 := time.Now()
	for range r.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if runCtx.Err() != nil {
					continue
				}
				s0 := time.Now()
				n, err := item(i)
				if err != nil {
					cancel(fmt.Errorf("item %d: %w", i, err))
					continue
				}
				lat[i] = time.Since(s0)
				steps.Add(int64(n))
			}
		}()
	}
feed:
	for i := range r.Items {
		select {
		case work <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := measure.ProcessCPU() - cpu0
	if err := context.Cause(runCtx); err != nil {
		return r, err
	}
	r.ServerCPU = "included: postmaster and its children, from /proc"
	if srvErr == nil && server != nil {
		srv1, err := server.Total()
		if err == nil {
			r.ServerCPUMSPerItem = ms(srv1-srv0) / float64(r.Items)
		}
		srvErr = err
	}
	if srvErr != nil {
		r.ServerCPU = "not measured: " + srvErr.Error()
	}
	r.Seconds = elapsed.Seconds()
	r.Throughput = float64(r.Ops) / r.Seconds
	r.CPUMSPerItem = ms(cpu) / float64(r.Items)
	r.P50MS, r.P95MS, r.P99MS, r.MaxMS = measure.PercentileMS(lat, 0.50), measure.PercentileMS(lat, 0.95), measure.PercentileMS(lat, 0.99), measure.PercentileMS(lat, 1)

	// Untimed: every step each workflow reported is one durable row.
	var rows int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".operation_outputs").Scan(&rows); err != nil {
		return r, fmt.Errorf("count steps: %w", err)
	}
	r.Steps = rows
	if want := int(steps.Load()); rows != want {
		chk.Failf("operation_outputs holds %d step rows, the workflows reported %d steps", rows, want)
	}
	var done int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".workflow_status WHERE status = 'SUCCESS'").Scan(&done); err != nil {
		return r, fmt.Errorf("count workflows: %w", err)
	}
	if done != r.Items {
		chk.Failf("workflow_status holds %d successful workflows, want %d", done, r.Items)
	}
	r.Violations, r.ViolationsTotal = chk.Report()
	return r, nil
}

// runWorkflow runs one workflow to its end and returns its result.
func runWorkflow[P, R any](ctx dbos.Context, wf dbos.Workflow[P, R], in P) (R, error) {
	h, err := dbos.RunWorkflow(ctx, wf, in)
	if err != nil {
		var zero R
		return zero, err
	}
	return h.GetResult()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "dbos-peer — %s, %s, %d CPU(s), %s; %s; %s; items %d, concurrency %d, pool %d\n\n",
		rep.Date[:10], rep.System, rep.CPUs, rep.GoVersion, rep.Server, rep.Durability, rep.Items, rep.Concurrency, rep.Pool)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "id\tscenario\titems\tconc\tthroughput\tp50 ms\tp95 ms\tp99 ms\tCPU ms/item\tserver CPU ms/item\tsteps\t")
	for _, r := range rep.Results {
		srv := "n/a"
		if strings.HasPrefix(r.ServerCPU, "included") {
			srv = fmt.Sprintf("%.2f", r.ServerCPUMSPerItem)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f %s/s\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%d\t\n",
			r.ID, r.Name, r.Items, r.Concurrency, r.Throughput, r.Unit, r.P50MS, r.P95MS, r.P99MS, r.CPUMSPerItem, srv, r.Steps)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s: server CPU %s\n", r.Name, r.ServerCPU)
		for _, v := range r.Violations {
			fmt.Fprintf(w, "  violation: %s\n", v)
		}
	}
}
