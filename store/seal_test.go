package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkSeal seals draft after head and checks the result against the
// general path: the hash is ComputeHash's, and the stored value decodes to
// the same envelope.
func checkSeal(t *testing.T, draft Envelope, head chainHead, at time.Time) {
	t.Helper()
	s, err := newSealer(draft)
	if err != nil {
		t.Skip("draft refused:", err)
	}
	got, v, err := s.seal(head, at)
	if err != nil {
		// Only where the general path refuses too (a seq beyond 2^53
		// that float64 cannot hold).
		if _, herr := got.ComputeHash(); herr == nil {
			t.Fatalf("seal: %v, but ComputeHash accepts the envelope", err)
		}
		return
	}
	want, err := got.ComputeHash()
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != want {
		t.Fatalf("sealed hash %s, ComputeHash %s\nvalue %s", got.Hash, want, v)
	}
	var back Envelope
	if err := json.Unmarshal(v, &back); err != nil {
		t.Fatalf("stored value does not decode: %v\n%s", err, v)
	}
	if !back.RecordedAt.Equal(got.RecordedAt) {
		t.Fatalf("recorded_at %v, want %v", back.RecordedAt, got.RecordedAt)
	}
	back.RecordedAt = got.RecordedAt
	if !reflect.DeepEqual(back, got) {
		t.Fatalf("stored value decodes to\n%+v\nwant\n%+v", back, got)
	}
}

// Ensure a seal on the committer allocates only the stored value and the
// hash's string.
func TestSealAllocations(t *testing.T) {
	s, err := newSealer(Envelope{TraceID: "0193-ab", StepID: "charge", StateHash: "s1", PolicyHash: "p0",
		RecordSHA256: "r0", RunSHA256: "x1", RunStatus: "running",
		Payload: json.RawMessage(`{"output":{"amount":129.5,"order_id":"o-17"},"tool_grants":{},"tool_source":"operator"}`)})
	if err != nil {
		t.Fatal(err)
	}
	head := chainHead{Seq: 41, Hash: strings.Repeat("ab", 32)}
	at := time.Date(2026, 12, 2, 4, 5, 6, 123456789, time.UTC)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := s.seal(head, at); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Fatalf("seal: %v allocations, want 2 (the value, the hash string)", n)
	}
}

// Ensure the committer's spliced encoding hashes exactly what
// Envelope.ComputeHash (and so VerifyChain) hashes.
func TestSealMatchesComputeHash(t *testing.T) {
	at := time.Date(2026, 11, 23, 22, 18, 27, 123456789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name  string
		draft Envelope
		head  chainHead
	}{
		{"first", Envelope{TraceID: "e", StepID: "s", Payload: json.RawMessage(`{"b":1,"a":[1.50,"x"]}`)}, chainHead{}},
		{"full", Envelope{Kind: EnvelopeKindStep, TraceID: "0193-ab", StepIndex: 41, StepID: "charge", PolicyHash: "p0", StateHash: "s1",
			Payload: json.RawMessage(`{"output":{"ref":"vault-ref:sha256:00"}}`), ModuleSHA256: "m", ManifestSHA256: "f"}, chainHead{Seq: 99, Hash: "ab12"}},
		{"no payload", Envelope{Kind: EnvelopeKindErase, StepID: "x"}, chainHead{Seq: 1, Hash: "00"}},
		{"escapes", Envelope{TraceID: "é\"\\\n\u2028<>&", StepID: "\x01\t", PolicyHash: "\U0001F600", StateHash: "\u007f",
			Payload: json.RawMessage(`"\u00e9\ud83d\ude00"`)}, chainHead{Seq: 7, Hash: "h"}},
		{"large seq", Envelope{TraceID: "e", StepID: "s"}, chainHead{Seq: maxExactInt + 5, Hash: "h"}},
		{"record hashes", Envelope{TraceID: "e", StepID: "s", RecordSHA256: "r0", RunSHA256: "x1", InputSHA256: "i2", ProgramSHA256: "p3"}, chainHead{Seq: 3, Hash: "h"}},
		{"run status", Envelope{TraceID: "e", StepID: "s", RecordSHA256: "r0", RunSHA256: "x1", RunStatus: "success", InputSHA256: "i2"}, chainHead{Seq: 3, Hash: "h"}},
		{"run status, escapes, large seq", Envelope{TraceID: "e", RunSHA256: "x1", RunStatus: "\"\u2028\u00e9"}, chainHead{Seq: maxExactInt + 5, Hash: "h"}},
		{"record hash only", Envelope{TraceID: "e", StepID: "s", RecordSHA256: "r0", ModuleSHA256: "m"}, chainHead{Seq: 3, Hash: "h"}},
		{"program hash only", Envelope{TraceID: "e", ProgramSHA256: "\\\""}, chainHead{Seq: 3, Hash: "h"}},
		{"record hashes, large seq", Envelope{TraceID: "e", RecordSHA256: "r", InputSHA256: "i"}, chainHead{Seq: maxExactInt + 5, Hash: "h"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkSeal(t, tc.draft, tc.head, at) })
	}
}

func FuzzSeal(f *testing.F) {
	f.Add("exec", "step", "pol", "state", `{"a":1}`, "mod", "", uint64(0), 3, int64(0), "", "", "", "")
	f.Add("é\"\\", "\x00", "", "", `[1e3,"\u2028"]`, "", "man", uint64(1<<53), 0, int64(1e18), "r", "x", "i", "p")
	f.Fuzz(func(t *testing.T, traceID, stepID, policy, state, payload, module, manifest string, seq uint64, index int, ns int64, record, run, input, program string) {
		if !json.Valid([]byte(payload)) {
			return
		}
		d := Envelope{TraceID: traceID, StepID: stepID, PolicyHash: policy, StateHash: state,
			Payload: json.RawMessage(payload), ModuleSHA256: module, ManifestSHA256: manifest, StepIndex: index,
			RecordSHA256: record, RunSHA256: run, InputSHA256: input, ProgramSHA256: program}
		if run != "" {
			d.RunStatus = state // the store sets a status with every run hash
		}
		checkSeal(t, d, chainHead{Seq: seq % (1 << 60), Hash: "prev"}, time.Unix(0, ns))
	})
}

// TestPrepareDraftCanonicalPayload: a payload already canonical is kept
// as given (not copied); one that is not is canonicalized; both seal to
// what ComputeHash hashes.
func TestPrepareDraftCanonicalPayload(t *testing.T) {
	for _, tc := range []struct {
		payload, want string
		kept          bool
	}{
		{`{"output":{"amount":129.5,"order_id":"o-17"},"tool_grants":{},"tool_source":"operator"}`, `{"output":{"amount":129.5,"order_id":"o-17"},"tool_grants":{},"tool_source":"operator"}`, true},
		{`{"output": {"order_id":"o-17","amount":129.50}}`, `{"output":{"amount":129.5,"order_id":"o-17"}}`, false},
		{`{"output":"\u00e9"}`, `{"output":"é"}`, false},
		{``, `null`, false},
	} {
		in := json.RawMessage(tc.payload)
		d, err := prepareDraft(Envelope{TraceID: "e", StepID: "s", Payload: in})
		if err != nil {
			t.Fatalf("%s: %v", tc.payload, err)
		}
		if string(d.Payload) != tc.want {
			t.Errorf("%s: payload %s, want %s", tc.payload, d.Payload, tc.want)
		}
		if kept := len(in) > 0 && &d.Payload[0] == &in[0]; kept != tc.kept {
			t.Errorf("%s: kept as given %v, want %v", tc.payload, kept, tc.kept)
		}
		s, err := newSealer(Envelope{TraceID: "e", StepID: "s", Payload: in})
		if err != nil {
			t.Fatal(err)
		}
		e, v, err := s.seal(chainHead{Seq: 3, Hash: "ab"}, time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		if h, err := e.ComputeHash(); err != nil || h != e.Hash {
			t.Errorf("%s: sealed hash %s, ComputeHash %s (%v)", tc.payload, e.Hash, h, err)
		}
		if !strings.Contains(string(v), `"payload":`+tc.want+`,`) {
			t.Errorf("%s: stored %s", tc.payload, v)
		}
	}
}
