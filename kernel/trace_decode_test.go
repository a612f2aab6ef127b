package kernel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

// sameDecode checks that a direct decoder and json.Unmarshal agree on data:
// both fail, or both succeed with the same value. The values are compared
// deeply and re-encoded, which tells -0 from 0.
func sameDecode[T any](t *testing.T, data []byte, direct func([]byte, *T) error) {
	t.Helper()
	var got, want T
	gotErr := direct(data, &got)
	wantErr := json.Unmarshal(data, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: direct error %v, encoding/json error %v", data, gotErr, wantErr)
	}
	if wantErr != nil {
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("%q: direct error %q, encoding/json error %q", data, gotErr, wantErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\ndirect       %#v\nencoding/json %#v", data, got, want)
	}
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
		t.Fatalf("%q: re-encoded\ndirect       %s %v\nencoding/json %s %v", data, g, err1, w, err2)
	}
}

// sameDirectDecode encodes v with encoding/json and holds the direct
// decoder to encoding/json on the bytes (sameDecode); directly must say
// they take the direct path. It returns the bytes.
func sameDirectDecode[T any](t *testing.T, v *T, direct func([]byte, *T) error, directly func([]byte) bool) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sameDecode(t, b, direct)
	if !directly(b) {
		t.Fatalf("%T %s takes encoding/json's path", *v, b)
	}
	return b
}

// Ensure DecodeStepRecord and DecodeTrace give what encoding/json gives for
// the records of random programs' traces, as the runtime stores them.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	r, programs := propertyRand(t, 0x7472616365, 300, 60)
	records := 0
	for i := 0; i < programs; i++ {
		p, _, err := kernel.LoadProgram([]byte(randomProgram(r)))
		if err != nil {
			t.Fatal(err)
		}
		tr := runToEnd(t, p, map[string]any{"input_x": "a<b>&c \u2028 é", "k0": "yes"})
		for k := range tr.Steps {
			sameDirectDecode(t, &tr.Steps[k], kernel.DecodeStepRecord, kernel.DecodesDirectly)
			records++
		}
		full, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdr := *tr
		hdr.Steps, hdr.StateSnapshots = nil, nil
		sameDirectDecode(t, &hdr, kernel.DecodeTrace, kernel.TraceDecodesDirectly)
		// A whole trace takes encoding/json's path for its snapshots.
		sameDecode(t, full, kernel.DecodeTrace)
	}
	t.Logf("%d records", records)
}

// Ensure the direct path handles everything a record may hold, not only
// what the random programs produce.
func TestDecodeStepRecordValues(t *testing.T) {
	raw := "model said \"maybe\"\n"
	ts := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.FixedZone("", 7200))
	rec := kernel.StepRecord{
		Index: 7, StepID: "s\u00e9p", Type: kernel.StepParallel, Kind: kernel.KindResume, Status: kernel.StepSkipped,
		Output: map[string]any{
			"html": "<a href=\"x\">&amp;</a>", "ctl": "\x00\x01\t\r\n\b\f\\/", "uni": "é日本\U0001F600\u2028\u2029",
			"nums": []any{0.0, 1.0, -1.0, 0.5, 1e21, 1e-7, 123456789012345.0, 1234567890123456789.0, -0.000001, 1.7976931348623157e308},
			"nest": []any{[]any{}, map[string]any{}, nil, true, false, []any{map[string]any{"a": []any{"b"}}}},
			"":     "empty key", "k\"ey": "quoted key",
		},
		Error: "boom: \u00ff", Retries: 3, Usage: kernel.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12, CostUSD: 0.0125},
		StateHash: strings.Repeat("ab", 32), Next: "next", TimedOut: true, RawOutput: &raw, Source: "WEBHOOK", Log: "line1\nline2",
		Tool: &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n"},
		SubSteps: []kernel.SubStepRecord{
			{StepID: "a", Type: kernel.StepTool, Status: kernel.StepFailed, Output: nil, Error: "x", Retries: 1, TimedOut: true, RawOutput: &raw, Log: "l", Tool: &kernel.ToolProvenance{ModuleSHA256: "m"}, StartedAt: ts, FinishedAt: ts, DurationMS: 1.5},
			{StepID: "b", Output: "s"},
		},
		StartedAt: ts, FinishedAt: ts.UTC(), DurationMS: 0.001,
	}
	b := sameDirectDecode(t, &rec, kernel.DecodeStepRecord, kernel.DecodesDirectly)
	var got kernel.StepRecord
	if err := kernel.DecodeStepRecord(b, &got); err != nil || !reflect.DeepEqual(got.Output, rec.Output) {
		t.Fatalf("round trip: %v\n%#v", err, got.Output)
	}
	rec.SubSteps = []kernel.SubStepRecord{}
	b, _ = json.Marshal(&rec)
	sameDecode(t, b, kernel.DecodeStepRecord)
}

// Ensure input the direct path does not take, or must refuse, gets exactly
// encoding/json's result or error.
func TestDecodeStepRecordEdges(t *testing.T) {
	cases := []string{
		``, ` `, `null`, `{}`, ` { } `, `[]`, `"x"`, `{"index":1}x`, `{"index":1}{}`, `{"index":1} `, "\t{\n\"index\" :\r1 }\n",
		`{"index":1,"index":2}`, `{"Index":1}`, `{"INDEX":1}`, `{"ind\u0065x":3}`, `{"unknown":1}`, `{"index":"1"}`,
		`{"index":1.0}`, `{"index":1e2}`, `{"index":-0}`, `{"index":01}`, `{"index":-}`, `{"index":9223372036854775807}`,
		`{"index":9223372036854775808}`, `{"index":123456789012345678}`, `{"index":1234567890123456789}`,
		`{"index":null}`, `{"step_id":null}`, `{"output":null}`, `{"tool":null}`, `{"raw_output":null}`, `{"sub_steps":null}`,
		`{"sub_steps":[]}`, `{"sub_steps":[{}]}`, `{"sub_steps":[{"step_id":"a"},{"step_id":"b"}]}`, `{"sub_steps":[{"step_id":"a","step_id":"b"}]}`,
		`{"tool":{}}`, `{"tool":{"module_sha256":"a","x":1}}`, `{"usage":{"cost_usd":1e400}}`, `{"usage":{"cost_usd":-0}}`,
		`{"duration_ms":-0}`, `{"duration_ms":-0.0}`, `{"duration_ms":1E+2}`, `{"duration_ms":.5}`, `{"duration_ms":5.}`, `{"duration_ms":+5}`,
		`{"output":-0}`, `{"output":1e400}`, `{"output":[1,2,]}`, `{"output":{"a":1,}}`, `{"output":{"a":1,"a":2}}`, `{"output":tru}`, `{"output":truex}`,
		`{"output":"\ud83d\ude00"}`, `{"output":"\ud83d"}`, `{"output":"\ud83dx"}`, `{"output":"\ude00\ud83d"}`, `{"output":"\ud83d\u0041"}`,
		`{"output":"\u00zz"}`, `{"output":"\x"}`, `{"output":"\'"}`, "{\"output\":\"a\x01b\"}", "{\"output\":\"\xff\xfe\"}", "{\"output\":\"\xc3\"}",
		`{"output":{"\u00e9":1,"k\"":2}}`, "{\"output\":{\"\xff\":1}}", `{"output":"unterminated}`, `{"output":[`, `{"output":{`,
		`{"started_at":"2025-01-01T00:00:00Z"}`, `{"started_at":"2025-01-01T00:00:00+02:00"}`, `{"started_at":"2025-13-01T00:00:00Z"}`,
		`{"started_at":null}`, `{"started_at":"2025-01-01T00:00:00\u005a"}`, `{"started_at":1}`, `{"timed_out":1}`, `{"timed_out":null}`,
		`{"output":` + strings.Repeat("[", 1500) + strings.Repeat("]", 1500) + `}`,
		`{"output":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	}
	for _, c := range cases {
		sameDecode(t, []byte(c), kernel.DecodeStepRecord)
		sameDecode(t, []byte(c), kernel.DecodeTrace)
	}
	for _, c := range []string{
		`{"finished_at":null}`, `{"finished_at":"2025-01-01T00:00:00Z"}`, `{"state_snapshots":[[0,"h"]]}`, `{"state_snapshots":null}`,
		`{"steps":[{"index":0},{"index":1}]}`, `{"steps":[]}`, `{"steps":null}`, `{"step_metrics":{"llm_calls":1,"llm_calls":2}}`,
		`{"status":"success","final_output":{"a":[1,"b"]},"step_metrics":{"llm_calls":1,"tool_calls":2,"condition_evals":3,"retries_total":4}}`,
	} {
		sameDecode(t, []byte(c), kernel.DecodeTrace)
	}
}

// Ensure DecodeInput gives what encoding/json gives for a nil map.
func TestDecodeInput(t *testing.T) {
	for _, c := range []string{
		`{}`, `{"order_id":"o-1","request":"The toaster broke \u003cnow\u003e","n":[1,2.5,{"x":null}],"b":true}`, ` {"a":1} `,
		`{"a":1,"a":2}`, `null`, `[]`, `"s"`, `1`, `{"a":}`, `{"a":1}x`, ``, "{\"\xff\":\"\xfe\"}", `{"a":1e400}`,
	} {
		sameDecode(t, []byte(c), kernel.DecodeInput)
	}
}

func FuzzDecodeStepRecord(f *testing.F) {
	for _, s := range []string{
		`{"index":0,"step_id":"a","type":"tool","status":"success","output":{"x":[1,"\u003c",null]},"retries":0,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0},"state_hash":"h","tool":{"module_sha256":"m","manifest_sha256":"n"},"started_at":"2025-01-01T00:00:00Z","finished_at":"2025-01-01T00:00:00.5Z","duration_ms":0.5}`,
		`{"index":2,"step_id":"p","type":"parallel","status":"success","output":null,"sub_steps":[{"step_id":"x","status":"failed","error":"e","raw_output":"r"}]}`,
		`{"output":"\ud83d\ude00\ud83d"}`, `{"index":1,"index":2}`, `{"Output":1}`,
		`{"tool":{"module_sha256":"m","manifest_sha256":"n","source":"upload","grants":{"nanovm:log":"upload-default","wasi:fs":"upload-policy"}}}`,
		`{"tool":{"source":"operator","grants":{}}}`, `{"tool":{"grants":null}}`, `{"tool":{"grants":{"a":"b","a":"c"}}}`,
		`{"tool":{"grants":{"a":1}}}`, `{"tool":{"Grants":{"a":"b"}}}`, `{"sub_steps":[{"tool":{"source":"bundled","grants":{"x":"policy"}}}]}`,
	} {
		f.Add([]byte(s))
	}
	for _, rec := range deepRecords() {
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameDecode(t, data, kernel.DecodeStepRecord)
		sameDecode(t, data, kernel.DecodeTrace)
		sameDecode(t, data, kernel.DecodeInput)
	})
}

func ExampleDecodeStepRecord() {
	var rec kernel.StepRecord
	err := kernel.DecodeStepRecord([]byte(`{"index":0,"step_id":"classify","type":"llm","status":"success","output":"refund"}`), &rec)
	fmt.Println(rec.StepID, rec.Output, err)
	// Output: classify refund <nil>
}

// refundRecords is a refund pipeline run's records as the runtime stores
// them.
func refundRecords(b *testing.B) [][]byte {
	p := mustLoad(b, refundPipeline)
	m := kernel.NewMachine(&kernel.Options{Tools: &benchTools{}, LLM: &cycleLLM{answers: []string{"refund", "yes"}}, Clock: kerneltest.NewManualClock(), IDs: &kerneltest.SeqIDs{}})
	tr, err := m.Start(context.Background(), p, map[string]any{"request": "my toaster broke", "order_id": "o-17"}, "")
	if err != nil {
		b.Fatal(err)
	}
	var out [][]byte
	for i := range tr.Steps {
		data, err := json.Marshal(&tr.Steps[i])
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// BenchmarkDecodeStepRecord decodes a refund run's records, directly and
// with encoding/json.
func BenchmarkDecodeStepRecord(b *testing.B) {
	recs := refundRecords(b)
	for _, bc := range []struct {
		name   string
		decode func([]byte, *kernel.StepRecord) error
	}{
		{"direct", kernel.DecodeStepRecord},
		{"encoding-json", func(data []byte, rec *kernel.StepRecord) error { return json.Unmarshal(data, rec) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, data := range recs {
					var rec kernel.StepRecord
					if err := bc.decode(data, &rec); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// deepRecords are step records and trace headers around values nested
// jsonlimit.MaxDepth deep (the deepest accepted), and far deeper (what an
// older release may have stored).
func deepRecords() [][]byte {
	var out [][]byte
	for _, n := range []int{jsonlimit.MaxDepth, jsonlimit.MaxRecordDepth, 10_001} {
		v := strings.Repeat("[", n) + strings.Repeat("]", n)
		out = append(out,
			[]byte(`{"index":0,"step_id":"a","type":"tool","status":"success","output":`+v+`}`),
			[]byte(`{"index":1,"step_id":"p","type":"parallel","status":"success","sub_steps":[{"step_id":"x","status":"success","output":`+v+`}]}`),
			[]byte(`{"trace_id":"t","status":"success","final_output":`+v+`,"steps":[{"index":0,"output":`+v+`}]}`))
	}
	return out
}

// Ensure every record built around an accepted value decodes, directly,
// exactly as encoding/json decodes it; and a record too deep for
// encoding/json fails the same way in both, as an error, never a panic.
func TestDecodeDeepRecords(t *testing.T) {
	for i, rec := range deepRecords() {
		sameDecode(t, rec, kernel.DecodeStepRecord)
		sameDecode(t, rec, kernel.DecodeTrace)
		var r kernel.StepRecord
		err := kernel.DecodeStepRecord(rec, &r)
		if deep := i >= 6; deep != (err != nil) {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}
