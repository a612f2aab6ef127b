package benchmark

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// scenarios is the run order: the list, then the microbenchmark.
var scenarios = []Scenario{
	{
		ID: "BM-INT-01", Name: "refund", Title: "refund pipeline", Unit: "programs", opsPerItem: 1,
		Original: "3.8K programs/s, p95 81 ms", Target: "≥ 10,000 programs/s, p95 ≤ 20 ms",
		setup: setupRuns(refundProgram), item: refundItem(false), verify: verifyRuns,
		met: func(r *Result) bool { return r.Throughput >= 10_000 && r.P95MS <= 20 },
	},
	{
		ID: "BM-INT-04", Name: "parallel", Title: "parallel fan-out ×10", Unit: "programs", opsPerItem: 1,
		Original: "1.8K programs/s, p95 103 ms", Target: "≥ 3,600 programs/s",
		setup: setupRuns(parallelProgram), item: parallelItem, verify: verifyRuns,
		met: func(r *Result) bool { return r.Throughput >= 3_600 },
	},
	{
		ID: "BM-INT-05", Name: "roundtrip-nosync", Group: "roundtrip", Title: "store round trip", Unit: "ops", opsPerItem: 4,
		sequential: true, Original: "20.8K ops/s (no fsync)", Target: "≥ 20,800 ops/s",
		setup: setupRoundTrip(true), item: roundTripItem,
		met: func(r *Result) bool { return r.Throughput >= 20_800 },
	},
	{
		ID: "BM-INT-05", Name: "roundtrip-fsync", Group: "roundtrip", Title: "store round trip", Unit: "ops", opsPerItem: 4,
		sequential: true, setup: setupRoundTrip(false), item: roundTripItem,
	},
	{
		ID: "BM-INT-06", Name: "envelope", Title: "refund + envelope read-back", Unit: "programs", opsPerItem: 1,
		Original: "4.3K programs/s",
		setup:    setupRuns(refundProgram), item: refundItem(true), verify: verifyRuns,
	},
	{
		ID: "BM-INT-08", Name: "replay", Title: "replay equivalence", Unit: "replays", opsPerItem: 1,
		Original: "2.3K replays/s, p95 135 ms", Target: "≥ 50,000 replays/s",
		setup: setupReplay, item: replayItem, verify: verifyRuns,
		met: func(r *Result) bool { return r.Throughput >= 50_000 },
	},
	{
		ID: "BM-INT-10", Name: "long", Title: "long horizon, 1,000 steps", Unit: "steps", opsPerItem: LongHorizonSteps,
		sequential: true, perItemRSS: true, items: func(n int) int { return max(1, n/LongHorizonSteps) },
		Original: "160 steps/s, 5.7 s per program, peak RSS 64 MB", Target: "≤ 0.5 s per program, RSS growth ≤ 20 MB per program",
		setup: setupRuns(nil), item: longItem, verify: verifyRuns,
		met: func(r *Result) bool { return r.MaxMS <= 500 && r.ItemRSSGrowthMB <= 20 },
	},
	{
		ID: "BM-TOOL", Name: "toolcall-fresh", Group: "toolcall", Title: "tool call, fresh sandbox", Unit: "calls", opsPerItem: 1,
		setup: setupToolCall("get_order_amount"), item: toolCallItem,
	},
	{
		ID: "BM-TOOL", Name: "toolcall-pooled", Group: "toolcall", Title: "tool call, pooled sandbox", Unit: "calls", opsPerItem: 1,
		setup: setupToolCall(pooledTool), item: toolCallItem,
	},
}

// runs is what the program scenarios record per item for the untimed
// checks: the trace id and the steps the run reported as successful,
// which must each have left one envelope.
type runs struct {
	program json.RawMessage
	ids     []string
	// ok is the steps each run recorded, each of which left an envelope.
	ok [][]string
	// paths is the step ids each run reported, in order.
	paths [][]string
}

func newRuns(program json.RawMessage, n int) *runs {
	if program == nil {
		program = longProgram()
	}
	return &runs{program: program, ids: make([]string, n), ok: make([][]string, n), paths: make([][]string, n)}
}

// setupRuns prepares the records of n runs of program (nil: the long
// horizon chain, built on first use).
func setupRuns(program json.RawMessage) func(context.Context, *Env, int, *checker) (any, error) {
	return func(_ context.Context, _ *Env, n int, _ *checker) (any, error) {
		return newRuns(program, n), nil
	}
}

// run runs one program and checks what every program scenario checks: no
// error, the expected status, unique step ids, and (when path is not nil)
// exactly that path. It records the trace id and the steps recorded (each
// left an envelope, whatever its status).
func (r *runs) run(ctx context.Context, e *Env, i int, input map[string]any, path []string, chk *checker) (*runtime.RunResult, error) {
	var steps []string
	res, err := e.rt.RunProgram(ctx, runtime.RunRequest{Program: r.program, Input: input, Progress: func(p runtime.Progress) {
		steps = append(steps, p.StepID)
	}})
	if err != nil {
		return nil, err
	}
	r.ids[i], r.ok[i], r.paths[i] = res.TraceID, steps, steps
	chk.addEnvelopes(len(steps))
	if res.Status != "success" {
		chk.failf("item %d: status %s, want success (%s)", i, res.Status, res.Error)
	}
	if res.Steps != len(steps) {
		chk.failf("item %d: result says %d steps, progress reported %d", i, res.Steps, len(steps))
	}
	if d := duplicate(steps); d != "" {
		chk.failf("item %d: step id %q recorded twice", i, d)
	}
	if path != nil && !slices.Equal(steps, path) {
		chk.failf("item %d: path %v, want %v", i, steps, path)
	}
	return res, nil
}

func duplicate(ids []string) string {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	return ""
}

var refundProgram = json.RawMessage(RefundProgram)

// refundItem runs BM-INT-01 (and, with readBack, BM-INT-06: the envelopes
// are read back and checked inside the timed item).
func refundItem(readBack bool) func(context.Context, *Env, any, int, *checker) error {
	return func(ctx context.Context, e *Env, st any, i int, chk *checker) error {
		r := st.(*runs)
		c := refundInput(i)
		res, err := r.run(ctx, e, i, c.input, c.path, chk)
		if err != nil || !readBack {
			return err
		}
		return checkEnvelopes(ctx, e, res.TraceID, r.ok[i], i, chk)
	}
}

// checkEnvelopes checks that a run left exactly one envelope per
// step record (failed and skipped steps too), in order.
func checkEnvelopes(ctx context.Context, e *Env, traceID string, ok []string, i int, chk *checker) error {
	envs, err := e.rt.Store().Envelopes(ctx, traceID)
	if err != nil {
		return err
	}
	got := make([]string, len(envs))
	for k, env := range envs {
		got[k] = env.StepID
		if env.TraceID != traceID {
			chk.failf("item %d: envelope seq %d belongs to %q, not %q", i, env.Seq, env.TraceID, traceID)
		}
	}
	if !slices.Equal(got, ok) {
		chk.failf("item %d: envelopes for steps %v, want one per step %v", i, got, ok)
	}
	return nil
}

// verifyRuns checks every recorded run's envelopes after the timed phase.
func verifyRuns(ctx context.Context, e *Env, st any, chk *checker) error {
	r := st.(*runs)
	for i, id := range r.ids {
		if id == "" {
			chk.failf("item %d: never ran", i)
			continue
		}
		if err := checkEnvelopes(ctx, e, id, r.ok[i], i, chk); err != nil {
			return err
		}
	}
	return nil
}

var parallelProgram = json.RawMessage(ParallelProgram)

// parallelItem runs BM-INT-04 and checks every sub-step answered.
func parallelItem(ctx context.Context, e *Env, st any, i int, chk *checker) error {
	r := st.(*runs)
	orderID := fmt.Sprintf("o-%d", i)
	res, err := r.run(ctx, e, i, map[string]any{"order_id": orderID}, []string{"fanout"}, chk)
	if err != nil {
		return err
	}
	out, _ := res.FinalOutput.(map[string]any)
	if len(out) != ParallelWidth {
		chk.failf("item %d: parallel output has %d sub-results, want %d", i, len(out), ParallelWidth)
		return nil
	}
	for k, v := range out {
		m, _ := v.(map[string]any)
		if m["order_id"] != orderID || m["amount"] == nil {
			chk.failf("item %d: sub-step %s answered %v", i, k, v)
			return nil
		}
	}
	return nil
}

// longItem runs one BM-INT-10 chain.
func longItem(ctx context.Context, e *Env, st any, i int, chk *checker) error {
	r := st.(*runs)
	_, err := r.run(ctx, e, i, nil, longPath(), chk)
	return err
}

var (
	longOnce sync.Once
	longRaw  json.RawMessage
	longIDs  []string
)

func longProgram() json.RawMessage {
	longOnce.Do(func() {
		longRaw = json.RawMessage(ChainProgram(LongHorizonSteps))
		longIDs = make([]string, LongHorizonSteps)
		for k := range longIDs {
			longIDs[k] = fmt.Sprintf("s%d", k)
		}
	})
	return longRaw
}

func longPath() []string { longProgram(); return longIDs }

// setupReplay records n refund runs (untimed, 64 at a time) for BM-INT-08
// to replay.
func setupReplay(ctx context.Context, e *Env, n int, chk *checker) (any, error) {
	r := newRuns(refundProgram, n)
	work := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := refundInput(i)
				if _, err := r.run(ctx, e, i, c.input, c.path, chk); err != nil {
					select {
					case errs <- fmt.Errorf("record item %d: %w", i, err):
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return r, nil
}

// replayItem replays one recorded run from the store and checks it is
// equivalent, record for record.
func replayItem(ctx context.Context, e *Env, st any, i int, chk *checker) error {
	r := st.(*runs)
	rep, err := e.rt.Replay(ctx, r.ids[i])
	if err != nil {
		return err
	}
	if !rep.Equivalent {
		chk.failf("item %d: replay diverges: %+v", i, rep.Divergence)
	}
	if rep.Records != len(r.paths[i]) {
		chk.failf("item %d: replay compared %d records, the run had %d", i, rep.Records, len(r.paths[i]))
	}
	return nil
}

// roundTrip is BM-INT-05's store.
type roundTrip struct{ db *store.DB }

func setupRoundTrip(noSync bool) func(context.Context, *Env, int, *checker) (any, error) {
	return func(_ context.Context, e *Env, _ int, _ *checker) (any, error) {
		name := "roundtrip-fsync"
		if noSync {
			name = "roundtrip-nosync"
		}
		db, err := e.openSideStore(name, noSync)
		if err != nil {
			return nil, err
		}
		e.onClose(db.Close)
		return &roundTrip{db: db}, nil
	}
}

// roundTripItem is the original's four calls: save and get a program, save
// and get a trace.
func roundTripItem(ctx context.Context, _ *Env, st any, i int, chk *checker) error {
	db := st.(*roundTrip).db
	id := fmt.Sprintf("item-%d", i)
	if _, err := db.PutProgram(ctx, store.Program{ID: id, Name: "refund_pipeline", Hash: "h", Program: refundProgram}); err != nil {
		return err
	}
	p, err := db.Program(ctx, id)
	if err != nil {
		return err
	}
	if _, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: id, Status: "success", Program: refundProgram, Header: traceHeader}); err != nil {
		return err
	}
	x, err := db.Run(ctx, id)
	if err != nil {
		return err
	}
	if p.ID != id || len(p.Program) == 0 || x.ID != id || x.Status != "success" || len(x.Header) == 0 {
		chk.failf("item %d: read back program %q / trace %q %s", i, p.ID, x.ID, x.Status)
	}
	return nil
}

// toolCall is the tool-call scenarios' state: the resolved tool and the
// order id of each item, built in the untimed set-up so that the timed
// item is the call (and the arguments map a real caller builds). The ids
// are one string cut at offsets: no pointer per item for the collector
// to scan during the timed phase.
type toolCall struct {
	tool *tools.Tool
	ids  string
	ends []uint32 // item i's id is ids[ends[i-1]:ends[i]] (from 0 for item 0)
}

// id is item i's order id, "o-<i>".
func (tc *toolCall) id(i int) string {
	start := uint32(0)
	if i > 0 {
		start = tc.ends[i-1]
	}
	return tc.ids[start:tc.ends[i]]
}

func setupToolCall(name string) func(context.Context, *Env, int, *checker) (any, error) {
	return func(ctx context.Context, e *Env, n int, _ *checker) (any, error) {
		reg, err := e.toolRegistry(ctx)
		if err != nil {
			return nil, err
		}
		t, err := reg.Resolve(ctx, name)
		if err != nil {
			return nil, err
		}
		var ids []byte
		ends := make([]uint32, n)
		for i := range ends {
			ids = strconv.AppendInt(append(ids, "o-"...), int64(i), 10)
			ends[i] = uint32(len(ids))
		}
		return &toolCall{tool: t, ids: string(ids), ends: ends}, nil
	}
}

// toolCallItem is one sandboxed call of get_order_amount, with its answer
// checked: the order id it was given back, and an amount.
func toolCallItem(ctx context.Context, _ *Env, st any, i int, chk *checker) error {
	tc := st.(*toolCall)
	id := tc.id(i)
	res, err := tc.tool.Call(ctx, tools.CallRequest{TraceID: "bench", Args: map[string]any{"order_id": id}})
	if err != nil {
		return err
	}
	if m, _ := res.Output.(map[string]any); m["order_id"] != id || m["amount"] == nil {
		chk.failf("item %d: %s answered %v", i, tc.tool.Record.Name, res.Output)
	}
	return nil
}
