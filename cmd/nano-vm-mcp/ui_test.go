package main

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// uiGet requests path from the viewer "nano-vm-mcp ui" printed rawURL for,
// with the token from its fragment, and decodes the answer.
func uiGet(t *testing.T, rawURL, path string, out any) int {
	t.Helper()
	base, tok, ok := strings.Cut(rawURL, "#token=")
	if !ok {
		t.Fatalf("no token in %q", rawURL)
	}
	code, b := getWithKey(t, base+path, tok)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return code
}

// Ensure nano-vm-mcp ui beside a running server reads through its
// operator channel: the runs, a step with its envelope, the policy and
// the chain's status come from the server holding the database; without
// its token the API is refused.
func TestUIBesideServer(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	db := shortDB(t)
	_, stop := startHTTP(t, db, "k")
	defer stop()
	code, out, errOut := runCLI(t, "", "run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"), "--db", db, "--cache-dir", sharedCache, "--json")
	var res struct {
		TraceID string `json:"trace_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("run: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	u := startUI(t, db)

	var runs struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	if st := uiGet(t, u, "api/traces", &runs); st != 200 || len(runs.Traces) != 1 || runs.Traces[0].TraceID != res.TraceID {
		t.Fatalf("runs: %d %+v", st, runs)
	}
	var step struct {
		Envelope *struct {
			Seq       uint64 `json:"seq"`
			StateHash string `json:"state_hash"`
		} `json:"envelope"`
		Step struct {
			StateHash string `json:"state_hash"`
		} `json:"step"`
	}
	if st := uiGet(t, u, "api/traces/"+res.TraceID+"/steps/0", &step); st != 200 || step.Envelope == nil || step.Envelope.StateHash != step.Step.StateHash {
		t.Fatalf("step through the server: %d %+v", st, step)
	}
	var pol struct {
		Hash string `json:"policy_hash"`
	}
	if st := uiGet(t, u, "api/policy", &pol); st != 200 || len(pol.Hash) != 64 {
		t.Fatalf("policy through the server: %d %+v", st, pol)
	}
	var audit struct {
		OK      bool `json:"ok"`
		Checked int  `json:"checked"`
	}
	if st := uiGet(t, u, "api/audit", &audit); st != 200 || !audit.OK || audit.Checked != 4 {
		t.Fatalf("audit through the server: %d %+v", st, audit)
	}
	base, _, _ := strings.Cut(u, "#")
	resp, err := http.Get(base + "api/traces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the API without the token: %d", resp.StatusCode)
	}
}

// Ensure ui refuses to listen beyond loopback, saying how to share the
// viewer instead.
func TestUIListenLoopbackOnly(t *testing.T) {
	code, _, errOut := runCLI(t, "", "ui", "--listen", "0.0.0.0:0", "--db", shortDB(t))
	if code != 2 || !strings.Contains(errOut, "loopback") || !strings.Contains(errOut, "NANO_VM_MCP_API_KEY") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
