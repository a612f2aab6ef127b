package viewer_test

import (
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
)

// Ensure the step view's envelope carries the run status it commits to:
// the last step of a finished run seals the run's end, an earlier step
// the run still going (the page shows both).
func TestStepEnvelopeRunStatus(t *testing.T) {
	rt, id := longRun(t, 3)
	src := &oneEnvelope{everyEnvelope: everyEnvelope{Source: viewer.Local(rt)}, rt: rt}
	last := getStep(t, src, id, 2)
	if last.Envelope == nil || last.Envelope.RunStatus != string(kernel.StatusSuccess) {
		t.Fatalf("the last step's envelope: %+v, want run_status %q", last.Envelope, kernel.StatusSuccess)
	}
	first := getStep(t, src, id, 0)
	if first.Envelope == nil || kernel.Status(first.Envelope.RunStatus).Terminal() {
		t.Fatalf("the first step's envelope: %+v, want a run status that is not terminal", first.Envelope)
	}
}
