package jsonlines

import (
	"encoding/json"
	"strings"
	"testing"
)

// Ensure an oversized line is skipped to its newline, reported with the
// id it carries wherever that id sits, and the lines after it are read.
func TestReadLinesOversized(t *testing.T) {
	big := strings.Repeat("x", 200)
	tests := []struct {
		name     string
		in       string
		dropTorn bool
		wantIDs  []string // ids of the oversized lines, "" for none
		wantOK   []string // the lines read
	}{
		{name: "id first", in: `{"jsonrpc":"2.0","id":7,"method":"m","params":{"s":"` + big + `"}}` + "\n" + `{"id":8}` + "\n",
			wantIDs: []string{"7"}, wantOK: []string{`{"id":8}`}},
		{name: "id last", in: `{"jsonrpc":"2.0","method":"m","params":{"s":"` + big + `","id":99},"id":"abc"}` + "\n" + `{"id":8}` + "\n",
			wantIDs: []string{`"abc"`}, wantOK: []string{`{"id":8}`}},
		{name: "id only nested", in: `{"method":"m","params":{"id":5,"s":"` + big + `"}}` + "\n",
			wantIDs: []string{""}},
		{name: "escaped quote in string", in: `{"method":"m","params":{"s":"\",\"id\":3,` + big + `"},"id":4}` + "\n",
			wantIDs: []string{"4"}},
		{name: "not json", in: big + "\n" + `{"id":1}` + "\n", wantIDs: []string{""}, wantOK: []string{`{"id":1}`}},
		{name: "object id refused", in: `{"id":{"a":1},"s":"` + big + `"}` + "\n", wantIDs: []string{""}},
		{name: "two in a row", in: `{"id":1,"s":"` + big + `"}` + "\n" + `{"id":2,"s":"` + big + `"}` + "\n" + "{}\n",
			wantIDs: []string{"1", "2"}, wantOK: []string{"{}"}},
		{name: "torn last line kept", in: `{"id":1,"s":"` + big + `"}`, wantIDs: []string{"1"}},
		{name: "torn last line dropped", in: `{"id":1,"s":"` + big + `"}`, dropTorn: true},
		{name: "exactly the limit", in: `{"id":1,"s":"` + strings.Repeat("y", 64-15) + `"}` + "\n", wantOK: []string{`{"id":1,"s":"` + strings.Repeat("y", 64-15) + `"}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids, ok []string
			err := Read(strings.NewReader(tc.in), 64, tc.dropTorn, func(l []byte) { ok = append(ok, string(l)) },
				func(o Oversized) {
					ids = append(ids, string(o.ID))
					if o.N <= int64(o.Limit) || o.Limit != 64 {
						t.Errorf("oversized line reported as %d bytes over %d", o.N, o.Limit)
					}
				})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(ids, "|") != strings.Join(tc.wantIDs, "|") {
				t.Errorf("oversized ids %q, want %q", ids, tc.wantIDs)
			}
			if strings.Join(ok, "|") != strings.Join(tc.wantOK, "|") {
				t.Errorf("lines %q, want %q", ok, tc.wantOK)
			}
		})
	}
}

// Ensure the id of a message that does not parse is recovered when it
// can be.
func TestRecoverID(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"id":12,"method":}`, "12"},
		{`{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{`, ""}, // id value never ended? it did: ends at ','
		{`[1,2]`, ""},
		{`{"id":null}`, ""},
		{`{"id":true,"x":1}`, ""},
		{`{"ID":1,"x":1}`, ""},
	}
	tests[1].want = `"x-1"`
	for _, tc := range tests {
		if got := string(RecoverID([]byte(tc.in))); got != tc.want {
			t.Errorf("RecoverID(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzIDScanner checks the id scanner never panics and that any id it
// reports is a JSON number or string.
func FuzzIDScanner(f *testing.F) {
	for _, s := range []string{`{"id":1}`, `{"a":"\"","id":"q"}`, `{"id":[1]}`, `}}{{`, `{"id":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id := RecoverID(b)
		if id == nil {
			return
		}
		var v any
		if err := json.Unmarshal(id, &v); err != nil {
			t.Fatalf("id %q is not JSON: %v", id, err)
		}
		switch v.(type) {
		case string, float64:
		default:
			t.Fatalf("id %q is a %T", id, v)
		}
	})
}
