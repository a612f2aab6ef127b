package primary

import (
	"context"
	"testing"
)

// BenchmarkRoundTrip measures one MCP request and its answer through the
// primary's own in-process session and through a forwarder's socket: the
// cost a second client pays for sharing the database.
func BenchmarkRoundTrip(b *testing.B) {
	_, primary, forwarder := sharedPair(b)
	for _, bc := range []struct {
		name string
		m    *member
	}{{"primary", primary}, {"forwarder", forwarder}} {
		b.Run(bc.name+"/ping", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.m.c.Ping(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/list_traces", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.m.call(b, "list_traces", map[string]any{"limit": 1})
			}
		})
	}
}
