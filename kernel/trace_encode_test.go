package kernel

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// sameAsMarshal holds AppendStepRecord to json.Marshal for rec: the same
// bytes, or both failing.
func sameAsMarshal(t testing.TB, rec *StepRecord) {
	t.Helper()
	want, wantErr := json.Marshal(rec)
	got, err := AppendStepRecord([]byte("x"), rec)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendStepRecord error %v, json.Marshal %v", err, wantErr)
	}
	if err != nil {
		return
	}
	if !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("AppendStepRecord\n got %s\nwant %s", got[1:], want)
	}
	// The fast path itself, not the fallback, must have produced them
	// whenever the record holds only plain JSON values.
	if _, ok := appendStepRecord(nil, rec); !ok && plain(rec.Output) {
		t.Fatalf("fell back on a plain record: %s", want)
	}
}

func sameTraceAsMarshal(t testing.TB, tr *Trace) {
	t.Helper()
	want, wantErr := json.Marshal(tr)
	got, err := AppendTrace(nil, tr)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendTrace error %v, json.Marshal %v", err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendTrace\n got %s\nwant %s", got, want)
	}
}

// plain reports whether v holds only what JSON decoding makes, with finite
// numbers.
func plain(v any) bool {
	switch x := v.(type) {
	case nil, bool, string:
		return true
	case float64:
		return !math.IsInf(x, 0) && !math.IsNaN(x)
	case []any:
		for _, e := range x {
			if !plain(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !plain(e) {
				return false
			}
		}
		return true
	}
	return false
}

var encStrings = []string{"", "ok", "<b>&</b>", "line\nsep\u2028", "\xff\x00", "日本", `"\`}

func randValue(r *rand.Rand, depth int) any {
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 1
	case 2:
		return []float64{0, 1e21, 1e-7, -3.5, 42, 1e300}[r.IntN(6)]
	case 3:
		return encStrings[r.IntN(len(encStrings))]
	case 4:
		if depth < 3 {
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = randValue(r, depth+1)
			}
			return a
		}
	case 5, 6:
		if depth < 3 {
			m := map[string]any{}
			for range r.IntN(5) {
				m[encStrings[r.IntN(len(encStrings))]+string(rune('a'+r.IntN(26)))] = randValue(r, depth+1)
			}
			return m
		}
	}
	return r.Float64()
}

func randTime(r *rand.Rand) time.Time {
	switch r.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()
	case 2:
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("z", 3600*(r.IntN(27)-13)))
	}
	return time.Date(10000+r.IntN(3), 1, 1, 0, 0, 0, 0, time.UTC) // MarshalJSON refuses
}

func randTool(r *rand.Rand) *ToolProvenance {
	if r.IntN(3) == 0 {
		return nil
	}
	t := &ToolProvenance{ModuleSHA256: "ab12", ManifestSHA256: encStrings[r.IntN(len(encStrings))]}
	if r.IntN(2) == 0 {
		t.Source = "upload"
		t.Grants = map[string]string{"nanovm:http": "policy", "<w>": "m&"}
	}
	if r.IntN(4) == 0 {
		t.Grants = map[string]string{}
	}
	if r.IntN(2) == 0 {
		t.Origin, t.Signer = "oci://reg/x@sha256:<ab>", encStrings[r.IntN(len(encStrings))]
	}
	return t
}

func randRecord(r *rand.Rand) *StepRecord {
	s := func() string { return encStrings[r.IntN(len(encStrings))] }
	rec := &StepRecord{
		Index: r.IntN(1000) - 2, StepID: s(), Type: StepType(s()), Status: StepStatus(s()), Output: randValue(r, 0),
		Retries: r.IntN(3), Usage: Usage{PromptTokens: r.IntN(100), CostUSD: []float64{0, 0.0001, 1e-9, 2.5}[r.IntN(4)]},
		StateHash: s(), StartedAt: randTime(r), FinishedAt: randTime(r), DurationMS: r.Float64() * 10, Tool: randTool(r),
	}
	if r.IntN(2) == 0 {
		rec.Kind, rec.Error, rec.Next, rec.TimedOut, rec.Source, rec.Log = KindResume, s(), s(), true, s(), s()
		raw := s()
		rec.RawOutput = &raw
	}
	for range r.IntN(3) {
		sub := SubStepRecord{StepID: s(), Type: StepTool, Status: StepSuccess, Output: randValue(r, 1), Tool: randTool(r),
			StartedAt: randTime(r), FinishedAt: randTime(r), Usage: Usage{TotalTokens: 3}}
		if r.IntN(2) == 0 {
			raw := s()
			sub.Error, sub.TimedOut, sub.RawOutput, sub.Log, sub.Retries = s(), true, &raw, s(), 2
		}
		rec.SubSteps = append(rec.SubSteps, sub)
	}
	if r.IntN(20) == 0 {
		rec.Output = map[string]any{"n": math.NaN()} // json.Marshal refuses
	}
	if r.IntN(20) == 0 {
		rec.Output = map[string]any{"typed": []int{1, 2}, "num": json.Number("12")} // not plain: falls back
	}
	return rec
}

// Ensure AppendStepRecord and AppendTrace write what json.Marshal writes,
// byte for byte, over many random records (awkward strings, floats at the
// exponent cutoffs, zones, years MarshalJSON refuses, omitted and present
// optional fields, sub-steps, values of types only encoding/json knows),
// and fail where it fails. Stored records are hashed by the envelopes and
// read by DecodeStepRecord's direct path, so they must not change.
func TestAppendStepRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 5000 {
		sameAsMarshal(t, randRecord(r))
	}
	for range 500 {
		tr := &Trace{TraceID: "t<1>", ProgramName: "p", Status: StatusRunning, FinalOutput: randValue(r, 0),
			InitialStateHash: "h", StartedAt: randTime(r), DurationMS: 1.5, StepMetrics: StepMetrics{LLMCalls: 2}}
		switch r.IntN(3) {
		case 0:
			tr.Steps, tr.StateSnapshots = []StepRecord{}, []Snapshot{}
		case 1:
			for range r.IntN(3) {
				tr.Steps = append(tr.Steps, *randRecord(r))
				tr.StateSnapshots = append(tr.StateSnapshots, Snapshot{Index: r.IntN(9), Hash: "a&b"})
			}
			ft := randTime(r)
			tr.FinishedAt, tr.Error, tr.SuspendedStepID = &ft, "e\n", "s"
		}
		sameTraceAsMarshal(t, tr)
	}
}

// FuzzAppendStepRecord decodes the input as a step record (and as a trace)
// with encoding/json and holds the appenders to json.Marshal on it.
func FuzzAppendStepRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 8 {
		b, err := json.Marshal(randRecord(r))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"index":1,"output":{"a":[1e21,"<"]},"tool":{"grants":{}},"sub_steps":[{"output":null}],"started_at":"2026-12-01T09:00:00+05:30"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec StepRecord
		if json.Unmarshal(data, &rec) == nil {
			sameAsMarshal(t, &rec)
		}
		var tr Trace
		if json.Unmarshal(data, &tr) == nil {
			sameTraceAsMarshal(t, &tr)
		}
	})
}

// Ensure a record of the refund pipeline encodes without an allocation
// beyond the buffer's growth.
func BenchmarkAppendStepRecord(b *testing.B) {
	rec := &StepRecord{Index: 2, StepID: "enrich", Type: StepParallel, Status: StepSuccess,
		Output:    map[string]any{"get_amount": map[string]any{"order_id": "o-1", "amount": 42.5}, "get_status": map[string]any{"order_id": "o-1", "status": "delivered"}},
		StateHash: "5f2b", StartedAt: time.Now(), FinishedAt: time.Now(), DurationMS: 0.25,
		SubSteps: []SubStepRecord{{StepID: "get_amount", Type: StepTool, Status: StepSuccess, Output: 1.0, Tool: &ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "bundled"}}}}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf, _ = AppendStepRecord(buf[:0], rec)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(rec)
		}
	})
}
