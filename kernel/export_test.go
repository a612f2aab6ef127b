package kernel

// DecodesDirectly reports whether DecodeStepRecord reads data without
// handing it to encoding/json: the records the runtime writes must, or
// reading a trace is silently slow again.
func DecodesDirectly(data []byte) bool {
	var rec StepRecord
	d := newJSONReader(data)
	return d.stepRecord(&rec) && d.atEnd()
}

// TraceDecodesDirectly is DecodesDirectly for DecodeTrace.
func TraceDecodesDirectly(data []byte) bool {
	var tr Trace
	d := newJSONReader(data)
	return d.trace(&tr) && d.atEnd()
}

// SameOutput is how replay decides two outputs agree.
func SameOutput(a, b any) bool { return sameText(a, b) }

// OutputText is the canonical text replay compares outputs by.
func OutputText(v any) string { return jsonText(v) }
