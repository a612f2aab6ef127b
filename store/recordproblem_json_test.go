package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure a record problem names its run under trace_id and, for clients of
// the earlier release, under the deprecated execution_id too.
func TestRecordProblemJSON(t *testing.T) {
	two := 2
	tests := []struct {
		name string
		p    store.RecordProblem
	}{
		{"step", store.RecordProblem{TraceID: "7f0c", Record: store.RecordStep, StepIndex: &two, Seq: 9, Problem: store.ProblemRecordChanged, Reason: "r"}},
		{"secret, no run", store.RecordProblem{Record: store.RecordSecret, Problem: store.ProblemRecordChanged, Reason: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["trace_id"] != tt.p.TraceID || m["execution_id"] != tt.p.TraceID || m["record"] != tt.p.Record {
				t.Fatalf("%s", b)
			}
		})
	}
}

// Ensure a verify report with every kind of problem decodes back to what
// was encoded (the CLI decodes the report a running server sends), and a
// problem written by an earlier release, under execution_id only, keeps
// its run.
func TestVerifyReportRoundTrip(t *testing.T) {
	two := 2
	var recs []store.RecordProblem
	for p := store.ProblemNone; p <= store.ProblemUncovered+1; p++ {
		recs = append(recs, store.RecordProblem{TraceID: "t", Record: store.RecordStep, StepIndex: &two, Seq: 3, Problem: p, Reason: "r"})
	}
	reports := []store.VerifyReport{
		{OK: true, Checked: 4, HeadSeq: 4, HeadHash: "ab", RecordsChecked: 9},
		{Checked: 1, Broken: &store.BrokenLink{Seq: 2, Problem: store.ProblemHashMismatch, Reason: "hash mismatch: seq 2"},
			Records: recs, RecordsOmitted: 7, Notes: []store.RecordProblem{{TraceID: "n", Record: store.RecordRun, Problem: store.ProblemLegacy, Reason: "old"}}},
		{Broken: &store.BrokenLink{Seq: 1, Problem: store.Problem(99), Reason: "future"}},
	}
	for i, want := range reports {
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got store.VerifyReport
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("report %d: decode %s: %v", i, b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("report %d: decoded\n%+v\nwant\n%+v", i, got, want)
		}
	}
	var old store.RecordProblem
	if err := json.Unmarshal([]byte(`{"execution_id":"e1","record":"step","problem":"gap","reason":"r"}`), &old); err != nil || old.TraceID != "e1" || old.Problem != store.ProblemGap {
		t.Fatalf("a problem under execution_id only: %+v, %v", old, err)
	}
}

// Ensure a name that is no problem's is refused, naming it.
func TestProblemUnmarshalRefuses(t *testing.T) {
	for _, s := range []string{``, `nope`, `Problem(1)`, `Problem(-0)`, `Problem(x)`, `Problem(07)`, `OK`} {
		var p store.Problem
		err := p.UnmarshalText([]byte(s))
		if !errors.Is(err, store.ErrUnknownProblem) || !strings.Contains(err.Error(), strconv.Quote(s)) {
			t.Errorf("UnmarshalText(%q) = %v, %v; want ErrUnknownProblem naming it", s, p, err)
		}
	}
}

// FuzzProblemText holds Problem's text form to a round trip: every value
// encodes to a name that decodes to it, and every text that decodes
// encodes back to the same text.
func FuzzProblemText(f *testing.F) {
	for p := store.ProblemNone; p <= store.ProblemUncovered+2; p++ {
		f.Add(p.String(), int(p))
	}
	f.Add("Problem(-5)", -5)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, s string, n int) {
		want := store.Problem(n)
		b, err := want.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got store.Problem
		if err := got.UnmarshalText(b); err != nil || got != want {
			t.Fatalf("Problem(%d) encodes to %q, which decodes to %v, %v", n, b, got, err)
		}
		var p store.Problem
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return
		}
		if again, _ := p.MarshalText(); string(again) != s {
			t.Fatalf("%q decodes to %d, which encodes to %q", s, int(p), again)
		}
	})
}
