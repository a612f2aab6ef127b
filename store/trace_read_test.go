package store

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// agree checks a direct read against decodeRecord on v: when read
// accepts v, decodeRecord must accept it too (into a W), and same must
// hold between the two.
func agree[G, W any](t *testing.T, v []byte, read func([]byte, *G) bool, same func(got G, want W) bool) (direct bool) {
	t.Helper()
	var got G
	if !read(v, &got) {
		return false
	}
	var want W
	if err := decodeRecord(v, &want); err != nil {
		t.Fatalf("%q: read directly, but decodeRecord: %v", v, err)
	}
	if !same(got, want) {
		t.Fatalf("%q:\ndirect       %+v\ndecodeRecord %+v", v, got, want)
	}
	return true
}

// agreeRun is agree for readRun: the same run.
func agreeRun(t *testing.T, v []byte) (direct bool) {
	t.Helper()
	return agree(t, v, readRun, func(got, want Run) bool { return reflect.DeepEqual(got, want) })
}

// agreeRunKeys is agree for the committer's readRunKeys.
func agreeRunKeys(t *testing.T, v []byte) (direct bool) {
	t.Helper()
	return agree(t, v, readRunKeys, func(got, want runKeys) bool {
		return got.ProgramID == want.ProgramID && got.Status == want.Status && got.CreatedAt.Equal(want.CreatedAt) && got.CreatedAt.Location().String() == want.CreatedAt.Location().String()
	})
}

// agreeBody is agree for run bodies.
func agreeBody(t *testing.T, v []byte) (direct bool) {
	t.Helper()
	return agree(t, v, readBody, func(got Run, want runBody) bool {
		return reflect.DeepEqual(got.Input, want.Input) && reflect.DeepEqual(got.Program, want.Program)
	})
}

// Ensure records as putRun writes them are read directly, with what
// decodeRecord and loadBody give; and that strings the direct path leaves
// to encoding/json still come out right through RunTrace's fallback.
func TestReadRunRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{"", "a", "refund_pipeline", "01a20a83-8c5e-79e3-8c98-0c5ea5d99f52", "sha256:abc"}
	raws := []string{`{}`, `{"a":[1,2.5,-3e-7,"x\"y",true,false,null,{"b":{}}]}`, `"s"`, `12`, `null`, `[]`, `{"u":"\u00e9\ud83d\ude00"}`}
	for range 500 {
		e := Run{
			ID: words[r.IntN(len(words))], ProgramID: words[r.IntN(len(words))], ProgramHash: words[r.IntN(len(words))],
			ProgramName: words[r.IntN(len(words))], Status: []kernel.Status{kernel.StatusRunning, kernel.StatusSuccess, kernel.StatusSuspended}[r.IntN(3)],
			PolicyHash: words[r.IntN(len(words))], IdempotencyKey: words[r.IntN(len(words))],
			Header:    json.RawMessage(raws[r.IntN(len(raws))]),
			CreatedAt: time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).UTC(), UpdatedAt: time.Unix(r.Int64N(1<<34), 0).In(time.FixedZone("", 3600)),
		}
		if r.IntN(3) == 0 {
			e.Header = nil
		}
		v, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if !agreeRun(t, v) {
			t.Fatalf("record %s is not read directly", v)
		}
		if !agreeRunKeys(t, v) {
			t.Fatalf("record %s: keys not read directly", v)
		}
		// A body from an older release may carry a "checkpoint" field:
		// it is read past, directly.
		var body struct {
			runBody
			Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
		}
		body.Input, body.Program = json.RawMessage(raws[r.IntN(len(raws))]), json.RawMessage(raws[r.IntN(len(raws))])
		if r.IntN(2) == 0 {
			body.Checkpoint = json.RawMessage(raws[r.IntN(len(raws))])
		}
		b, err := json.Marshal(&body)
		if err != nil {
			t.Fatal(err)
		}
		if !agreeBody(t, b) {
			t.Fatalf("body %s is not read directly", b)
		}
	}
	for _, v := range []string{
		`{"id":"é"}`, `{"id":"a\"b"}`, `{"id":"\u0061"}`, `{"ID":"a"}`, `{"id":"a","id":"b"}`, `{"unknown":1}`, `{"id":null}`,
		`{"created_at":"2025-01-01T00:00:00Z"}`, `{"created_at":"bad"}`, `{"created_at":null}`, `{"header":null}`,
		`{"header": {"a" : 1} }`, `{"header":{"a":1,}}`, `{"header":[1 2]}`, `{"header":01}`, `{"header":"\x"}`, `{"header":"\u12"}`,
		"{\"header\":\"a\x01\"}", "{\"header\":\"\xff\"}", `{"header":tru}`, `{}x`, ` {} `, `{"id":"a"`, `[]`, `null`, ``,
		`{"header":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}`,
	} {
		agreeRun(t, []byte(v))
		agreeRunKeys(t, []byte(v))
	}
	for _, v := range []string{`{}`, `{"input":null}`, `{"input":{},"input":{}}`, `{"input":{"a":1},"program":{"steps":[]},"checkpoint":1}`, `{"other":1}`} {
		agreeBody(t, []byte(v))
	}
}

func FuzzReadRun(f *testing.F) {
	for _, s := range []string{
		`{"id":"e","program_hash":"h","program_name":"n","status":"success","policy_hash":"p","header":{"a":[1,"b",null]},"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00.5+01:00"}`,
		`{"input":{"x":1},"program":{"steps":[{"id":"a"}]}}`, `{"header":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		agreeRun(t, v)
		agreeRunKeys(t, v)
		agreeBody(t, v)
	})
}
