package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	bolt "go.etcd.io/bbolt"
)

// callAny calls a tool and returns whether it was a tool error and its
// text, which must fit in the server's 40,000-byte result limit.
func callAny(t *testing.T, c *client.Client, name string, args map[string]any) (bool, map[string]any) {
	t.Helper()
	a, err := callObject(c, name, args, time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(a.text) > 40_000 {
		t.Fatalf("%s: answer of %d bytes", name, len(a.text))
	}
	if a.decodeErr != nil {
		t.Fatal(a.decodeErr)
	}
	return a.isError, a.obj
}

// registerRawEcho registers raw_echo, and raw_echo_schema: the same module
// with an output schema allowing no properties.
func registerRawEcho(t *testing.T, c *client.Client) {
	t.Helper()
	m := testModule(t, "raw_echo")
	callTool(t, c, "register_tool", uploadOf("raw_echo", m.Wasm, string(m.Manifest)), false)
	man := editedManifest(t, m, "raw_echo_schema", func(man map[string]any) {
		man["output_schema"] = map[string]any{"type": "object", "additionalProperties": false}
	})
	b, _ := json.Marshal(man)
	callTool(t, c, "register_tool", uploadOf("raw_echo_schema", m.Wasm, string(b)), false)
}

func echoProgram(tool string) string {
	return `{"steps":[{"id":"echo","type":"tool","tool":"` + tool + `","args":{"raw":"$payload"},"is_terminal":true}]}`
}

// Ensure, over MCP on the real binary, that no tool output poisons the
// store: output nested just under and at the limit is stored, listed,
// traced and verified; one level deeper is refused naming the limit and
// the run ends failed; a 900,000-digit number, a huge schema failure and
// a huge guest error each get an answer carrying the trace_id; and every
// client's list_traces, get_trace and verify_audit keep working, also
// after a restart.
func TestPoisonOutputOverMCP(t *testing.T) {
	db := filepath.Join(t.TempDir(), "poison.db")
	c := stdioClient(t, db)
	registerRawEcho(t, c)

	checkRun := func(id, status string) {
		t.Helper()
		list := callTool(t, c, "list_traces", map[string]any{"limit": 100}, false)
		found := false
		for _, it := range list["traces"].([]any) {
			found = found || it.(map[string]any)["trace_id"] == id
		}
		if !found || list["skipped"] != nil {
			t.Fatalf("list_traces: %v", list)
		}
		if tr := callTool(t, c, "get_trace", map[string]any{"trace_id": id}, false); tr["status"] != status {
			t.Fatalf("get_trace: %v", tr["status"])
		}
		for _, args := range []map[string]any{{}, {"trace_id": id}} {
			if v := callTool(t, c, "verify_audit", args, false); v["ok"] != true {
				t.Fatalf("verify_audit %v: %v", args, v)
			}
		}
	}
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, n := range []int{127, 128, 129, 10_000} {
		run := callTool(t, c, "run_program", map[string]any{"program": echoProgram("raw_echo"), "input": map[string]any{"payload": nest(n)}}, false)
		id, _ := run["trace_id"].(string)
		if n <= 128 {
			if run["status"] != "success" {
				t.Fatalf("depth %d: %v", n, run)
			}
			checkRun(id, "success")
			continue
		}
		if run["status"] != "failed" || !strings.Contains(fmt.Sprint(run["error"]), "nesting depth 129 exceeds the limit of 128") {
			t.Fatalf("depth %d: %v", n, run)
		}
		checkRun(id, "failed")
	}

	huge := strings.Repeat("x", 300_000)
	for _, tt := range []struct{ name, tool, payload, want string }{
		{"900,000-digit number", "raw_echo", strings.Repeat("9", 900_000), "a number of 900,000 characters exceeds the limit of 100"},
		{"huge schema failure", "raw_echo_schema", `{"` + huge + `":1}`, "bytes in all)"},
		{"huge guest error", "raw_echo", `{"error":"` + huge + `"}`, "bytes in all)"},
	} {
		isErr, run := callAny(t, c, "run_program", map[string]any{"program": echoProgram(tt.tool), "input": map[string]any{"payload": tt.payload}})
		id, _ := run["trace_id"].(string)
		if isErr || id == "" || run["status"] != "failed" || !strings.Contains(fmt.Sprint(run["error"]), tt.want) {
			t.Fatalf("%s: isError=%v %.500v", tt.name, isErr, run)
		}
		checkRun(id, "failed")
	}
	c.Close()

	// After a restart, as the finding had it: every listing still works.
	c = stdioClient(t, db)
	defer c.Close()
	if list := callTool(t, c, "list_traces", map[string]any{"limit": 100}, false); len(list["traces"].([]any)) != 7 || list["skipped"] != nil {
		t.Fatalf("list_traces after restart: %v", list)
	}
	if v := callTool(t, c, "verify_audit", map[string]any{}, false); v["ok"] != true {
		t.Fatalf("verify_audit after restart: %v", v)
	}
}

// Ensure, over MCP on the real binary, that records which cannot be
// decoded (an older release's or damaged ones) are reported as those
// records: list_traces skips them with a note, get_trace names the
// record, and the other runs are listed, read and resumed.
func TestUndecodableRecordsOverMCP(t *testing.T) {
	db := filepath.Join(t.TempDir(), "records.db")
	c := stdioClient(t, db)
	payArgs := func(key string) map[string]any {
		return map[string]any{
			"program":         readFile(t, example("payment_pipeline", "program.json")),
			"input":           map[string]any{"amount": 125.5, "order_id": "order-1"},
			"idempotency_key": key,
		}
	}
	pay := func(key string) string {
		return callTool(t, c, "run_program", payArgs(key), false)["trace_id"].(string)
	}
	badExec, badStep, good := pay("bad-exec"), pay("bad-step"), pay("good")
	susp := callTool(t, c, "run_program", map[string]any{
		"program": readFile(t, example("momo_suspend", "program.json")),
		"input":   map[string]any{"amount": 50000, "order_id": "momo-1"},
	}, false)["trace_id"].(string)
	c.Close()

	// What a release without the nesting limit could have stored: records
	// nested past encoding/json's limit of 10,000.
	deep := strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001)
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		execs := tx.Bucket([]byte("executions"))
		v := execs.Get([]byte(badExec))
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		rec["header"] = json.RawMessage(`{"final_output":` + deep + `}`)
		parts := make([]string, 0, len(rec))
		for k, v := range rec {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
		if err := execs.Put([]byte(badExec), []byte("{"+strings.Join(parts, ",")+"}")); err != nil {
			return err
		}
		key := append(append([]byte(badStep), 0), 0, 0, 0, 0, 0, 0, 0, 0)
		return tx.Bucket([]byte("steps")).Put(key, []byte(`{"index":0,"step_id":"validate","output":`+deep+`}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}

	c = stdioClient(t, db)
	defer c.Close()
	list := callTool(t, c, "list_traces", map[string]any{"limit": 100}, false)
	var listed []string
	for _, it := range list["traces"].([]any) {
		listed = append(listed, it.(map[string]any)["trace_id"].(string))
	}
	skipped, _ := list["skipped"].([]any)
	if len(listed) != 3 || len(skipped) != 1 || skipped[0].(map[string]any)["trace_id"] != badExec || skipped[0].(map[string]any)["error"] == "" {
		t.Fatalf("list_traces: %v", list)
	}
	for id, record := range map[string]string{badExec: "run record", badStep: "step record 0"} {
		isErr, body := callAny(t, c, "get_trace", map[string]any{"trace_id": id})
		if !isErr || body["error"] != "record_undecodable" || !strings.Contains(fmt.Sprint(body["message"]), id) || !strings.Contains(fmt.Sprint(body["message"]), record) {
			t.Fatalf("get_trace %s: %v", record, body)
		}
	}
	// A repeat of the key that started each damaged run names the record
	// too, instead of an internal error.
	for key, id := range map[string]string{"bad-exec": badExec, "bad-step": badStep} {
		isErr, body := callAny(t, c, "run_program", payArgs(key))
		if !isErr || body["error"] != "record_undecodable" || !strings.Contains(fmt.Sprint(body["message"]), id) {
			t.Fatalf("repeat of key %s: %v", key, body)
		}
	}
	if again := callTool(t, c, "run_program", payArgs("good"), false); again["trace_id"] != good || again["stored_outcome"] != true {
		t.Fatalf("repeat of an undamaged run's key: %v", again)
	}
	if tr := callTool(t, c, "get_trace", map[string]any{"trace_id": good}, false); tr["status"] != "success" {
		t.Fatalf("get_trace of an undamaged run: %v", tr)
	}
	done := callTool(t, c, "resume_program", map[string]any{"trace_id": susp, "payload": map[string]any{"payment_status": "SUCCESS"}, "source": "WEBHOOK"}, false)
	if done["status"] != "success" {
		t.Fatalf("resume of another run: %v", done)
	}
}
