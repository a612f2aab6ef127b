package main

import (
	"bytes"
	"context"
	be "encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// auditVerify runs `nano-vm-mcp audit verify` (the real binary) on db and
// returns its exit status and output.
func auditVerify(t *testing.T, db string, extra ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"audit", "verify", "--db", db, "--cache-dir", sharedCache}, extra...)...)
	cmd.Env = e2eEnv()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return runToExit(t, cmd), out.String()
}

// Ensure `audit verify` beside a running server (through its operator
// channel) prints the same problems, with the same exit status, as when
// it opens the database itself: a changed step record (a record problem)
// and a changed envelope (a broken link) both decode on the CLI's side.
func TestAuditVerifyBesideServerReportsProblems(t *testing.T) {
	tests := []struct {
		name, bucket string
		key          func(trace string) []byte
		old, new     string
		want         string // what both outputs must say
	}{
		{name: "step record", bucket: "steps",
			key: func(trace string) []byte { return be.BigEndian.AppendUint64(append([]byte(trace), 0), 2) },
			old: "captured", new: "refunded", want: "record changed"},
		{name: "envelope", bucket: "envelopes",
			key: func(string) []byte { return be.BigEndian.AppendUint64(nil, 2) },
			old: `"kind":"step"`, new: `"kind":"stex"`, want: "hash mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := shortDB(t)
			trace := runPaymentIn(t, db)
			patchRecord(t, db, tc.bucket, tc.key(trace), tc.old, tc.new)

			aloneCode, alone := auditVerify(t, db)
			if aloneCode == 0 || !strings.Contains(alone, tc.want) {
				t.Fatalf("audit verify on the file: exit %d, want a non-zero exit saying %q:\n%s", aloneCode, tc.want, alone)
			}
			p := startStdio(t, "primary", db, "2025-06-18")
			if !p.isPrimary() {
				t.Fatalf("the server is not the primary:\n%s", p.stderr)
			}
			besideCode, beside := auditVerify(t, db)
			if besideCode != aloneCode || beside != alone {
				t.Fatalf("audit verify beside the server: exit %d\n%s\nwant what it prints on the file itself: exit %d\n%s\nserver:\n%s",
					besideCode, beside, aloneCode, alone, p.stderr)
			}
		})
	}
}

// Ensure a finished run whose record is changed and re-sealed with the
// store's own code (PutRun appends an envelope committing to the new
// bytes) is reported by `audit verify` and by verify_audit over MCP on the
// real binary, naming the run record: the run's end sealed it.
func TestAuditReportsResealedRun(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	trace := runPaymentIn(t, db)
	st, err := store.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := st.Run(context.Background(), trace)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ex.Header, []byte(`"status":"sent"`)) {
		t.Fatalf("the run's header holds no sent receipt: %s", ex.Header)
	}
	ex.Header = bytes.ReplaceAll(ex.Header, []byte(`"status":"sent"`), []byte(`"status":"void"`))
	ex.Input, ex.Program = nil, nil
	if _, err := st.PutRun(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	want := fmt.Sprintf("trace %q execution: record changed", trace)
	for _, extra := range [][]string{nil, {"--trace", trace}} {
		if code, out := auditVerify(t, db, extra...); code == 0 || !strings.Contains(out, want) {
			t.Errorf("audit verify %v after the re-seal: exit %d; want a non-zero exit saying %s:\n%s", extra, code, want, out)
		}
	}
	c := stdioClient(t, db)
	defer c.Close()
	v := callTool(t, c, "verify_audit", map[string]any{}, false)
	recs, _ := v["records"].([]any)
	if v["ok"] != false || len(recs) != 1 {
		t.Fatalf("verify_audit after the re-seal = %v; want the run record reported", v)
	}
	if p := recs[0].(map[string]any); p["trace_id"] != trace || p["record"] != "execution" || p["problem"] != "record changed" {
		t.Errorf("verify_audit reported %v; want the run record of %s changed", p, trace)
	}
}

// runPaymentIn runs the payment_pipeline example over MCP on a server of
// its own with the database db, stops the server and returns the trace
// id of the run, which must have succeeded.
func runPaymentIn(t *testing.T, db string) string {
	t.Helper()
	c := stdioClient(t, db)
	run := runPaymentMCP(t, c)
	c.Close()
	trace, _ := run["trace_id"].(string)
	if run["status"] != "success" || trace == "" {
		t.Fatalf("run_program: %v", run)
	}
	return trace
}
