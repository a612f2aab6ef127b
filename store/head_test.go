package store_test

import (
	"context"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// BenchmarkHead measures Head, what the server's checkpoint writer polls,
// against a whole-chain VerifyChain on the same 10,000-envelope chain (100
// runs of 100 steps, every record in place, so verification passes).
func BenchmarkHead(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b, &store.Options{NoSync: true})
	commitRuns(b, db, 100, 100)
	b.Run("Head", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if seq, _, err := db.Head(ctx); err != nil || seq != 10000 {
				b.Fatal(seq, err)
			}
		}
	})
	b.Run("VerifyChain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
	})
}
