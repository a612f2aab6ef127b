package kernel

import "github.com/nanovm/nano-vm-mcp/internal/jsonread"

// DecodesDirectly reports whether DecodeStepRecord reads data without
// handing it to encoding/json: the records the runtime writes must, or
// reading a trace is silently slow again.
func DecodesDirectly(data []byte) bool {
	var rec StepRecord
	d := jsonread.New(data)
	return readStepRecord(d, &rec) && d.AtEnd()
}

// TraceDecodesDirectly is DecodesDirectly for DecodeTrace.
func TraceDecodesDirectly(data []byte) bool {
	var tr Trace
	d := jsonread.New(data)
	return readTrace(d, &tr) && d.AtEnd()
}

// SameOutput is how replay decides two outputs agree.
func SameOutput(a, b any) bool { return sameText(a, b) }

// OutputText is the canonical text replay compares outputs by.
func OutputText(v any) string { return jsonText(v) }

// RefWarningsInFull is RefWarnings without its shortcut for a run whose
// input defines every open reference.
func (p *Program) RefWarningsInFull(input map[string]any) []Warning { return p.refWarnings(input) }
