package main

import (
	"bytes"
	be "encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// patchRecord replaces old with new (the same length, so nothing else in
// the file moves) in the first stored record of bucket whose key is key,
// the way someone with the file and bbolt would. A step's value that
// refers to the step log (a NUL and the 8-byte log number, schema 3) is
// followed to the record in step_log.
func patchRecord(t *testing.T, db, bucket string, key []byte, old, new string) {
	t.Helper()
	runtimetest.UpdateFile(t, db, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		v := bk.Get(key)
		if bucket == "steps" && len(v) == 9 && v[0] == 0 {
			bk, key = tx.Bucket([]byte("step_log")), bytes.Clone(v[1:])
			v = bk.Get(key)
		}
		if !bytes.Contains(v, []byte(old)) {
			return fmt.Errorf("bucket %s key %q holds no %q: %s", bucket, key, old, v)
		}
		return bk.Put(key, bytes.Replace(v, []byte(old), []byte(new), 1))
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// Ensure a step record, a run's input and its program changed on
// disk after a run are each reported, naming the run and the record, by
// `nano-vm-mcp audit verify` (whole chain and --trace) and by
// verify_audit over MCP on the real binary, while the change shows in
// get_trace; an untouched copy verifies.
func TestAuditReportsChangedRecords(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "run.db")
	c := stdioClient(t, orig)
	run := runPaymentMCP(t, c)
	if run["status"] != "success" {
		t.Fatalf("run_program: %v", run)
	}
	trace := run["trace_id"].(string)
	if v := callTool(t, c, "verify_audit", map[string]any{"trace_id": trace}, false); v["ok"] != true {
		t.Fatalf("verify_audit before any change: %v", v)
	}
	c.Close()

	stepKey := be.BigEndian.AppendUint64(append([]byte(trace), 0), 2) // the capture step
	tests := []struct {
		name, bucket string
		key          []byte
		old, new     string
		record       string // what verify names
		shows        string // what get_trace then shows
	}{
		{name: "step record", bucket: "steps", key: stepKey, old: "captured", new: "refunded", record: "step", shows: "refunded"},
		{name: "input", bucket: "exec_bodies", key: []byte(trace), old: "order-abc-123", new: "order-xyz-123", record: "input"}, // get_trace does not show the input; resume and replay use it
		{name: "program", bucket: "exec_bodies", key: []byte(trace), old: "capture_payment", new: "capture_paymenX", record: "program"},
		{name: "untouched"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "copy.db")
			copyFile(t, orig, db)
			if tc.bucket != "" {
				patchRecord(t, db, tc.bucket, tc.key, tc.old, tc.new)
			}

			c := stdioClient(t, db)
			if tc.shows != "" {
				tr := callTool(t, c, "get_trace", map[string]any{"trace_id": trace}, false)
				if !strings.Contains(fmt.Sprint(tr), tc.shows) {
					t.Errorf("get_trace does not show the change %q: %v", tc.shows, tr)
				}
			}
			for _, args := range []map[string]any{{"trace_id": trace}, {}} {
				v := callTool(t, c, "verify_audit", args, false)
				if tc.bucket == "" {
					if v["ok"] != true {
						t.Errorf("verify_audit %v of an untouched file: %v", args, v)
					}
					continue
				}
				recs, _ := v["records"].([]any)
				if v["ok"] != false || len(recs) != 1 {
					t.Fatalf("verify_audit %v = %v; want the %s reported", args, v, tc.record)
				}
				p := recs[0].(map[string]any)
				if p["trace_id"] != trace || p["execution_id"] != trace || p["record"] != tc.record || p["problem"] != "record changed" {
					t.Errorf("verify_audit %v reported %v; want %s of %s changed", args, p, tc.record, trace)
				}
				if tc.record == "step" && p["step_index"] != float64(2) {
					t.Errorf("verify_audit %v reported step %v, want 2", args, p["step_index"])
				}
			}
			c.Close()

			for _, args := range [][]string{{"audit", "verify", "--db", db}, {"audit", "verify", "--db", db, "--trace", trace}} {
				cmd := exec.Command(binary, args...)
				cmd.Env = e2eEnv()
				out, err := cmd.CombinedOutput()
				if tc.bucket == "" {
					if err != nil || !strings.Contains(string(out), "audit chain verified") {
						t.Errorf("%v on an untouched file: %v\n%s", args, err, out)
					}
					continue
				}
				want := fmt.Sprintf("trace %q %s", trace, tc.record)
				if tc.record == "step" {
					want = fmt.Sprintf("trace %q step 2", trace)
				}
				if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "record changed") {
					t.Errorf("%v = %v; want a non-zero exit naming %s:\n%s", args, err, want, out)
				}
			}
		})
	}
}
