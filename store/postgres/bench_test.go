package postgres_test

import (
	"context"
	"fmt"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// BenchmarkCommitStep measures durable step commits (each with its
// envelope, as the runtime makes them) by writers runs at once, spread
// over replicas stores on one database: steps/s, the mean group size, and
// the share of wall time the chain head was held (the global order's
// serialised part).
func BenchmarkCommitStep(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, writers := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("replicas=%d/writers=%d", replicas, writers), func(b *testing.B) {
				dsn := dsnOf(b)
				var dbs []*postgres.DB
				for range replicas {
					dbs = append(dbs, openAt(b, dsn))
				}
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						db := dbs[w%replicas]
						ex, err := db.PutRun(ctx, store.Run{ID: fmt.Sprint("w", w), Status: kernel.StatusRunning})
						if err != nil {
							b.Error(err)
							return
						}
						for i := 0; next.Add(1) <= int64(b.N); i++ {
							if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, KeepRun: i > 0, Index: i,
								Step: []byte(`{"step_id":"s","status":"success","output":{"ok":true}}`), Envelope: &store.Envelope{StepID: "s", Payload: []byte(`{"output":{"ok":true}}`)}}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				var st postgres.CommitStats
				for _, db := range dbs {
					s := db.CommitStats()
					st.Batches += s.Batches
					st.Commits += s.Commits
					st.HeadHeld += s.HeadHeld
				}
				b.ReportMetric(float64(b.N)/el.Seconds(), "steps/s")
				if st.Batches > 0 {
					b.ReportMetric(float64(st.Commits)/float64(st.Batches), "steps/batch")
					b.ReportMetric(float64(st.HeadHeld.Microseconds())/float64(st.Batches), "µs-head/batch")
					b.ReportMetric(st.HeadHeld.Seconds()/el.Seconds(), "head-busy")
				}
			})
		}
	}
}
