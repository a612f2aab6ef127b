package telemetry

import (
	"fmt"
	"testing"
	"time"
)

// Ensure the tool label set is bounded: past maxToolLabels distinct tools,
// further ones are counted under _other, and a nil *Metrics records
// nothing without panicking.
func TestToolLabelsBounded(t *testing.T) {
	m := NewMetrics()
	for i := range maxToolLabels + 50 {
		m.ToolCall(fmt.Sprintf("tool-%d", i), "ok", time.Millisecond)
		m.MCPOperation("tools/call", fmt.Sprintf("tool-%d", i), "", TransportPipe, "", time.Millisecond)
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case MetricToolCallDuration, MetricMCPOperationDuration:
			if n := len(mf.GetMetric()); n != maxToolLabels+1 {
				t.Errorf("%s: %d series, want %d", mf.GetName(), n, maxToolLabels+1)
			}
		}
	}
	var none *Metrics
	none.Run("success")
	none.Step("tool", "success", time.Second)
	none.ToolCall("x", "ok", time.Second)
	none.Commit(1, time.Second)
	none.RegistrationRefused("upload")
	none.MCPOperation("ping", "", "", TransportTCP, "", time.Second)
	none.Register(Sources{})
}

// BenchmarkStep measures the cost a recorded step pays for its histogram.
func BenchmarkStep(b *testing.B) {
	m := NewMetrics()
	b.ReportAllocs()
	for b.Loop() {
		m.Step("tool", "success", time.Millisecond)
	}
}

// BenchmarkToolCall measures the cost a tool call pays for its histogram.
func BenchmarkToolCall(b *testing.B) {
	m := NewMetrics()
	b.ReportAllocs()
	for b.Loop() {
		m.ToolCall("reserve_funds", "ok", time.Millisecond)
	}
}
