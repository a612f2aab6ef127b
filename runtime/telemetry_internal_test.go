package runtime

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure the no-op tracer provider (what FromEnv returns with no OTEL_*
// exporter) leaves the runtime untraced: no tracer, no run trace, and the
// machine's tool executor is the governed one itself, not a wrapper.
func TestNoopTracerWrapsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "nil provider", cfg: Config{}},
		{name: "no-op provider", cfg: Config{TracerProvider: noop.NewTracerProvider()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DBPath = t.TempDir() + "/db"
			tc.cfg.NoBundledTools = true
			tc.cfg.VaultKey = make([]byte, 32)
			rt, err := Open(context.Background(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			if rt.tracer != nil {
				t.Fatal("a tracer with tracing off")
			}
			if tr := rt.traceRun(context.Background(), store.Run{ID: "x"}, "start"); tr != nil {
				t.Fatal("a run trace with tracing off")
			}
			obs := &persister{rt: rt}
			if _, wrapped := rt.machineTools().(*tracedTools); wrapped || obs.trace != nil {
				t.Fatal("tools wrapped with tracing off")
			}
			if rt.Metrics() == nil {
				t.Fatal("no metrics")
			}
		})
	}
}
