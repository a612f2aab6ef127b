package runtime

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
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

// Ensure a failed call's error.type names the first of its causes in
// callErrorType's order, through wrapping, and anything else is _OTHER.
func TestCallErrorType(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("call tool x: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{name: "deadline", err: wrap(context.DeadlineExceeded), want: "timeout"},
		{name: "tool timeout", err: wrap(tools.ErrTimeout), want: "timeout"},
		{name: "memory limit", err: wrap(tools.ErrMemoryLimit), want: "memory_limit"},
		{name: "memory budget", err: wrap(tools.ErrBudget), want: "memory_budget"},
		{name: "output limit", err: wrap(tools.ErrOutputLimit), want: "output_limit"},
		{name: "invalid args", err: wrap(tools.ErrInvalidArgs), want: "invalid_args"},
		{name: "invalid output", err: wrap(tools.ErrInvalidOutput), want: "invalid_output"},
		{name: "tool failed", err: wrap(tools.ErrToolFailed), want: "tool_failed"},
		{name: "trap", err: wrap(tools.ErrTrap), want: "trap"},
		{name: "exit", err: wrap(&tools.ExitError{Code: 3}), want: "exit"},
		{name: "canceled", err: wrap(context.Canceled), want: "canceled"},
		{name: "denied", err: wrap(&DeniedError{Tools: []string{"x"}}), want: "capability_denied"},
		{name: "other", err: errors.New("boom"), want: "_OTHER"},
		{name: "a timeout before a trap", err: errors.Join(tools.ErrTrap, context.DeadlineExceeded), want: "timeout"},
		{name: "a trap before an exit", err: errors.Join(&tools.ExitError{Code: 1}, tools.ErrTrap), want: "trap"},
		{name: "an exit before a cancel", err: errors.Join(context.Canceled, &tools.ExitError{Code: 1}), want: "exit"},
		{name: "a cancel before a denial", err: errors.Join(&DeniedError{Tools: []string{"x"}}, context.Canceled), want: "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := callErrorType(tc.err); got != tc.want {
				t.Fatalf("callErrorType(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
