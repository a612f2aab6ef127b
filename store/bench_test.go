package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

var benchPayload = json.RawMessage(`{"order_id":"A-1042","amount":129.5,"currency":"EUR","card":"vault://secret/card-1","items":[1,2,3]}`)

// BenchmarkEnvelopeAppend measures durable (fsync per commit) envelope
// appends by one writer and by 64 concurrent writers sharing commits.
func BenchmarkEnvelopeAppend(b *testing.B) {
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		db := openTemp(b, nil)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: "exec", StepIndex: i, StepID: "s", Payload: benchPayload}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	})
	b.Run("concurrent64", func(b *testing.B) {
		db := openTemp(b, nil)
		var worker atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(64) // 64 × GOMAXPROCS goroutines at least 64
		b.RunParallel(func(pb *testing.PB) {
			id := fmt.Sprint("exec-", worker.Add(1))
			for i := 0; pb.Next(); i++ {
				if _, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: id, StepIndex: i, StepID: "s", Payload: benchPayload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	})
}

// BenchmarkCommitStep measures the runtime's hot path, a durable step
// commit with its envelope, by 64 concurrent runs shaped as the
// runtime writes them: started by PutRun, then one commit per step
// carrying a small trace header.
func BenchmarkCommitStep(b *testing.B) { benchCommitStep(b, nil) }

// BenchmarkCommitStepNoJournal is BenchmarkCommitStep on bbolt's own two
// fdatasyncs per group commit, without the write-ahead journal.
func BenchmarkCommitStepNoJournal(b *testing.B) { benchCommitStep(b, &store.Options{NoJournal: true}) }

func benchCommitStep(b *testing.B, opts *store.Options) {
	ctx := context.Background()
	db := openTemp(b, opts)
	var worker atomic.Int64
	header := json.RawMessage(`{"trace_id":"t","program_name":"refund","status":"running","final_output":null,"initial_state_hash":"sha256:6b1f0e3c","state_root":"","step_metrics":{"llm_calls":0,"tool_calls":3,"retries":0},"usage":{"input_tokens":0,"output_tokens":0,"cost_usd":0},"started_at":"2026-11-23T22:18:27.123456789Z","duration_ms":0}`)
	b.ReportAllocs()
	b.SetParallelism(32) // 32 × GOMAXPROCS(2) = 64 runs
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("exec-", worker.Add(1))
		ex, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: "refund", ProgramHash: "h", Status: kernel.StatusRunning, PolicyHash: "p", Program: benchPayload, Input: benchPayload})
		if err != nil {
			b.Error(err)
			return
		}
		ex.Program, ex.Input, ex.Header = nil, nil, header
		for i := 0; pb.Next(); i++ {
			_, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: benchPayload,
				Envelope: &store.Envelope{StepID: "s", StateHash: "h", Payload: benchPayload, ModuleSHA256: "m", ManifestSHA256: "f"}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

// BenchmarkRoundTrip is the original's BM-INT-05: save and get a program,
// save and get a trace, sequentially. One iteration is those four calls.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	program := json.RawMessage(`{"name":"refund","steps":[{"id":"fetch","type":"tool","tool":"fetch_order","args":{"order_id":"$order_id"}},{"id":"decide","type":"llm","prompt":"ok?","allowed_outputs":["yes","no"]}]}`)
	header := json.RawMessage(`{"trace_id":"t","program_name":"refund","status":"success","final_output":"yes","step_metrics":{"llm_calls":1,"tool_calls":1}}`)
	for _, tc := range []struct {
		name   string
		noSync bool
	}{{name: "nosync", noSync: true}, {name: "fsync"}} {
		b.Run(tc.name, func(b *testing.B) {
			db := openTemp(b, &store.Options{NoSync: tc.noSync})
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprint("item-", i)
				if _, err := db.PutProgram(ctx, store.Program{ID: id, Name: "refund", Hash: "h", Program: program}); err != nil {
					b.Fatal(err)
				}
				if _, err := db.Program(ctx, id); err != nil {
					b.Fatal(err)
				}
				if _, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: id, Status: "success", Program: program, Header: header}); err != nil {
					b.Fatal(err)
				}
				if _, err := db.Run(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/s, "items/s")
			b.ReportMetric(float64(4*b.N)/s, "calls/s")
		})
	}
}

// BenchmarkVerifyChain measures re-checking the whole chain and the
// records it covers: 100 runs of 100 steps, committed as the runtime
// commits them.
func BenchmarkVerifyChain(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b, &store.Options{NoSync: true})
	const n = 100 * 100
	commitRuns(b, db, 100, 100)
	b.ReportAllocs()
	for b.Loop() {
		if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "envelopes/s")
}

// commitRuns commits runs runs of steps steps each, every step with its
// envelope, as the runtime writes them: a chain VerifyChain passes.
func commitRuns(b *testing.B, db *store.DB, runs, steps int) {
	ctx := context.Background()
	for r := range runs {
		ex, err := db.PutRun(ctx, store.Run{ID: fmt.Sprint("e", r), Status: kernel.StatusRunning, Input: benchPayload, Program: benchPayload})
		if err != nil {
			b.Fatal(err)
		}
		ex.Input, ex.Program = nil, nil
		for i := range steps {
			sc := store.StepCommit{Run: ex, KeepRun: i > 0, Index: i, Step: benchPayload, Envelope: &store.Envelope{StepID: "s", Payload: benchPayload}}
			if i == 0 {
				sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = sha(benchPayload), sha(benchPayload)
			}
			if _, err := db.CommitStep(ctx, sc); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCommitStepSequential is one run committing its steps one
// after the other, each durable before the next (BM-INT-10's shape), on
// the write-ahead journal (one fdatasync per commit) and without it
// (bbolt's two). journal-read reads the run after every step, which
// makes bbolt commit the write transaction kept open across batches at
// every step: the worst case of that design.
func BenchmarkCommitStepSequential(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		noJournal bool
		read      bool
	}{{name: "journal"}, {name: "journal-read", read: true}, {name: "nojournal", noJournal: true}} {
		b.Run(tc.name, func(b *testing.B) {
			db := openTemp(b, &store.Options{NoJournal: tc.noJournal})
			ex, err := db.PutRun(ctx, store.Run{ID: "seq", ProgramID: "long", Status: kernel.StatusRunning, PolicyHash: "p", Program: benchPayload, Input: benchPayload})
			if err != nil {
				b.Fatal(err)
			}
			ex.Program, ex.Input = nil, nil
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: benchPayload,
					Envelope: &store.Envelope{StepID: "s", StateHash: "h", Payload: benchPayload}}); err != nil {
					b.Fatal(err)
				}
				if tc.read {
					if _, err := db.Run(ctx, "seq"); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
		})
	}
}
