package store_test

import (
	"context"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// BenchmarkHead measures Head, what the server's checkpoint writer polls,
// against a whole-chain VerifyChain on the same 10,000-envelope chain.
func BenchmarkHead(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b, &store.Options{NoSync: true})
	for i := range 10000 {
		if _, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: "exec", StepIndex: i, StepID: "s", Payload: benchPayload}); err != nil {
			b.Fatal(err)
		}
	}
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
