package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// The programs the browser test runs: one with a parallel step and a
// suspension that is resumed, one left suspended, one of 1,000 steps.
const (
	showcaseProgram = `{"name":"showcase_refund","steps":[
 {"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}},
 {"id":"fan","type":"parallel","parallel_steps":[
   {"id":"refund","type":"tool","tool":"issue_refund","args":{"order_id":"$order_id","amount":"$amount"}},
   {"id":"log","type":"tool","tool":"audit_log"}],"next_step":"poll"},
 {"id":"poll","type":"tool","tool":"poll","output_key":"poll_result"},
 {"id":"check","type":"condition","condition":"$poll_result.payment_status == 'SUCCESS'","then":"receipt","otherwise":"rejected"},
 {"id":"receipt","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true},
 {"id":"rejected","type":"tool","tool":"audit_log","is_terminal":true}]}`
	waitingProgram = `{"name":"momo","steps":[
 {"id":"create","type":"tool","tool":"reserve_funds","args":{"order_id":"$order_id"},"output_key":"create_result"},
 {"id":"poll","type":"tool","tool":"poll","output_key":"poll_result"},
 {"id":"done","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true}]}`
	// hostileProgram's name and the payload it is resumed with are
	// markup: the page must show them as text.
	hostileProgram = `{"name":"<img src=x onerror=window.__xss=1>","steps":[{"id":"wait","type":"tool","tool":"poll"},{"id":"note","type":"tool","tool":"audit_log","is_terminal":true}]}`
	longProgram    = `{"name":"long_loop","max_steps":1000,"steps":[{"id":"tick","type":"tool","tool":"audit_log","next_step":"tick"}]}`
)

// viewerE2EDir is the folder of the browser script and its package.json.
var viewerE2EDir = filepath.Join("..", "..", "runtime", "viewer", "e2e")

// needBrowser returns node and chromium, or skips (fails with CI=true)
// saying how to get them.
func needBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(what, how string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (%s); CI must have it", what, how)
		}
		t.Skipf("%s is missing: %s", what, how)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", "apt-get install -y nodejs")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("chromium", "apt-get install -y chromium")
	}
	if _, err := os.Stat(filepath.Join(viewerE2EDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core", "(cd runtime/viewer/e2e && npm ci)")
	}
	return node, chromium
}

// runJSON runs a CLI command in-process with --json and decodes its
// output.
func runJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	_, out, errOut := runCLI(t, "", append(args, "--json")...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %v\n%s\n%s", args, err, out, errOut)
	}
	return v
}

// startUI starts "nano-vm-mcp ui" on db and returns the URL it prints.
func startUI(t *testing.T, db string) string {
	t.Helper()
	cmd := exec.Command(binary, "ui", "--db", db)
	cmd.Env = e2eEnv()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "open "); ok {
				urls <- u
			}
		}
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("nano-vm-mcp ui printed no URL")
	}
	return ""
}

// Ensure the run viewer works in a real browser (headless Chromium driven
// by playwright-core): sign in with the token, the runs list and its
// status filter, a run's timeline with parallel sub-steps side by side
// and its suspended time, a step's output, state hash and envelope, a
// run whose name and resume payload are markup shown as text only, a
// 1,000-step run drawn from one request (its load time is logged, not
// asserted), and a tampered copy of the database, served by
// "nano-vm-mcp ui", reported broken at the tampered seq. Screenshots go
// to $NANO_VM_MCP_ARTIFACTS (else the test's temp dir); with -update the
// run's screenshot replaces docs/viewer.png.
func TestViewerInBrowser(t *testing.T) {
	node, chromium := needBrowser(t)
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	dir := t.TempDir()
	db := shortDB(t)
	flags := []string{"--db", db, "--cache-dir", sharedCache}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	showcase := runJSON(t, append([]string{"run", write("showcase.json", showcaseProgram), "--input", `{"amount":42.5,"order_id":"ord-1042"}`}, flags...)...)
	if showcase["status"] != "suspended" {
		t.Fatalf("showcase run: %v", showcase)
	}
	showcaseID := showcase["trace_id"].(string)
	time.Sleep(1200 * time.Millisecond) // a suspension long enough to see
	if res := runJSON(t, append([]string{"resume", showcaseID, "--payload", `{"payment_status":"SUCCESS"}`}, flags...)...); res["status"] != "success" {
		t.Fatalf("resume: %v", res)
	}
	waiting := runJSON(t, append([]string{"run", write("waiting.json", waitingProgram), "--input", `{"order_id":"ord-7"}`}, flags...)...)
	if waiting["status"] != "suspended" {
		t.Fatalf("waiting run: %v", waiting)
	}
	hostile := runJSON(t, append([]string{"run", write("hostile.json", hostileProgram)}, flags...)...)
	if res := runJSON(t, append([]string{"resume", hostile["trace_id"].(string), "--payload", `{"status":"<script>window.__xss=2</script><b>bold</b>"}`}, flags...)...); res["status"] != "success" {
		t.Fatalf("resume the hostile run: %v", res)
	}
	long := runJSON(t, append([]string{"run", write("long.json", longProgram)}, flags...)...)
	longID := long["trace_id"].(string)

	tampered := filepath.Join(filepath.Dir(db), "tampered.db")
	copyFile(t, db, tampered)
	brokenSeq := runtimetest.TamperEnvelope(t, tampered, showcaseID, 1)

	const key = "viewer-e2e-key"
	base, stop := startHTTP(t, db, key)
	defer stop()
	tamperedURL := startUI(t, tampered)

	// The record count the page must draw, from the API itself.
	_, body := getWithKey(t, base+"/ui/api/traces/"+longID, key)
	var doc struct {
		TotalSteps int `json:"total_steps"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.TotalSteps < 1000 {
		t.Fatalf("long run: %d records, %v", doc.TotalSteps, err)
	}

	artifacts := os.Getenv("NANO_VM_MCP_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join(viewerE2EDir, "viewer.test.mjs"))
	cmd := exec.Command(node, script)
	cmd.Dir = viewerE2EDir
	cmd.Env = append(os.Environ(),
		"CHROMIUM="+chromium, "VIEWER_BASE="+base, "VIEWER_TOKEN="+key, "VIEWER_TAMPERED_URL="+tamperedURL,
		"VIEWER_BROKEN_SEQ="+jsonNumber(brokenSeq), "VIEWER_SHOWCASE_ID="+showcaseID, "VIEWER_LONG_ID="+longID,
		"VIEWER_SUSPENDED_ID="+waiting["trace_id"].(string), "VIEWER_HOSTILE_ID="+hostile["trace_id"].(string), "VIEWER_LONG_RECORDS="+jsonNumber(uint64(doc.TotalSteps)),
		"VIEWER_ARTIFACTS="+artifacts)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser script: %v\n%s\n%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("browser script output: %v\n%s", err, out)
	}
	t.Logf("1,000-step run (%v records) in the browser: %v ms from navigation to every row drawn (API %v ms, %v bytes; rendering %v ms); screenshots in %s",
		m["long_run_records"], m["long_run_load_ms"], m["long_run_api_ms"], m["long_run_api_bytes"], m["long_run_render_ms"], artifacts)
	if *update {
		copyFile(t, m["screenshot"].(string), filepath.Join("..", "..", "docs", "viewer.png"))
	}
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
