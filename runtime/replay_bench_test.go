package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// BenchmarkReplayStored replays recorded refund runs and nothing else:
// BenchmarkReplay's CPU profile is mostly its untimed recording, this one's
// is the replay path (store read, restore, kernel re-run, comparison).
func BenchmarkReplayStored(b *testing.B) {
	ctx := context.Background()
	e, err := benchmark.Open(ctx, benchmark.Config{
		DBPath: filepath.Join(b.TempDir(), "bench.db"), NoSync: true, CacheDir: runtimetest.CacheDir, Logger: quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ids := recordRefunds(b, e.Runtime(), 256)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[int(next.Add(1))%len(ids)]
			rep, err := e.Runtime().Replay(ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			if !rep.Equivalent {
				b.Errorf("replay of %s diverges: %v", id, rep.Divergence)
				return
			}
		}
	})
}

// recordRefunds runs the refund pipeline n times over its three paths and
// returns the trace ids.
func recordRefunds(tb testing.TB, rt *runtime.Runtime, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		in := map[string]any{"request": fmt.Sprintf("The toaster broke, I want a refund (ticket %d)", i), "order_id": fmt.Sprintf("o-%d", i)}
		switch i % 10 {
		case 4, 9:
			in["request"] = fmt.Sprintf("Where is my parcel? (ticket %d)", i)
		case 7:
			in["order_id"] = fmt.Sprintf("cancel-%d", i)
		}
		res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(benchmark.RefundProgram), Input: in})
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = res.TraceID
	}
	return ids
}
