package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"

	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// The multi-replica test: three `serve --transport http` processes on one
// PostgreSQL database, 200 concurrent run_program calls spread over them
// (two per idempotency key, sent to different replicas at once), and one
// replica SIGKILLed in the middle. Every tool execution is reported to a
// counter in the test process through nanovm.http_request, a side channel
// the kill cannot erase.

const (
	replicaSteps    = 4
	replicaKeys     = 100
	replicaRequests = 2 * replicaKeys
	// replicaLease is the lease timeout the replicas run with: a dead
	// replica's runs are taken over this long after its last heartbeat.
	replicaLease = 2 * time.Second
)

type replicaProc struct {
	*httpServer
	mcp *client.Client
}

// startReplica starts one serving replica on dsn and waits for /health;
// it is stopped when the test ends (one killed by the test only waited
// for), its log shown if the test failed.
func startReplica(t *testing.T, dsn string, env []string) *replicaProc {
	t.Helper()
	srv := launchHTTP(t, env, "--db", dsn, "--no-bundled-tools")
	t.Cleanup(func() {
		srv.stop()
		if t.Failed() {
			t.Logf("replica %s logged:\n%s", srv.base, srv.log)
		}
	})
	return &replicaProc{httpServer: srv, mcp: httpClient(t, srv.base)}
}

// runOn calls run_program on a replica; a transport failure or a tool
// error is returned as an error.
func runOn(c *client.Client, args map[string]any) (map[string]any, error) {
	a, err := callObject(c, "run_program", args, 2*time.Minute)
	switch {
	case err != nil:
		return nil, err
	case a.isError:
		return nil, fmt.Errorf("tool error: %s", a.text)
	}
	return a.obj, a.decodeErr
}

// TestReplicasSurviveAKill ensures three replicas on one database run 200
// concurrent requests (100 idempotency keys, each sent to two replicas at
// once) to completion while one replica is SIGKILLed mid-way: every key
// runs once (one execution, one trace id for both its callers), every
// step ran once but at most one per run (the step in flight at the kill)
// twice, and the audit chain verifies from a surviving replica.
func TestReplicasSurviveAKill(t *testing.T) {
	dsn := pgtest.Fresh(t)
	cnt := &killCounter{hits: map[string]int{}, killed: make(chan struct{})}
	srv := httptest.NewServer(cnt)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	env := append(os.Environ(),
		"NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey),
		"NANO_VM_MCP_CACHE_DIR="+sharedCache,
		"NANO_VM_MCP_TOOLS_DIR="+httpGetToolsDir(t, u.Host),
		"NANO_VM_MCP_LEASE_TIMEOUT="+replicaLease.String(),
		"NANO_VM_MCP_LOG_LEVEL=info")
	// The first replica migrates the database and registers the tool
	// before the others start, so they start on a database that is ready.
	reps := []*replicaProc{startReplica(t, dsn, env)}
	for range 2 {
		reps = append(reps, startReplica(t, dsn, env))
	}
	victim := reps[0]
	cnt.mu.Lock()
	cnt.victim = victim.cmd.Process
	// Kill when about a third of all the steps have run.
	cnt.killAt = replicaKeys * replicaSteps / 3
	cnt.mu.Unlock()

	program := func(key string) map[string]any {
		steps := make([]any, replicaSteps)
		for i := range steps {
			steps[i] = map[string]any{"id": fmt.Sprint("s", i), "type": "tool", "tool": "http_get",
				"args": map[string]any{"url": fmt.Sprintf("%s/%s/s%d", srv.URL, key, i)}}
		}
		return map[string]any{"name": "replicated", "steps": steps}
	}
	type outcome struct {
		key, trace, status string
		replayed           bool
		tries              int
		err                error
	}
	outcomes := make([]outcome, replicaRequests)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicaRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			key := fmt.Sprint("key-", i%replicaKeys)
			args := map[string]any{"program": program(key), "input": map[string]any{}, "idempotency_key": key}
			o := outcome{key: key}
			// The two requests of a key go to different replicas; a
			// request whose replica died is sent again, with its key,
			// to the next one (what a client behind a load balancer
			// does).
			r := i % len(reps)
			if i >= replicaKeys {
				r = (i + 1) % len(reps)
			}
			deadline := time.Now().Add(3 * time.Minute)
			for {
				o.tries++
				out, err := runOn(reps[r].mcp, args)
				if err == nil {
					o.trace, _ = out["trace_id"].(string)
					o.status, _ = out["status"].(string)
					o.replayed, _ = out["idempotent_replay"].(bool)
					break
				}
				o.err = err
				if time.Now().After(deadline) {
					break
				}
				r = (r + 1) % len(reps)
				if reps[r] == victim {
					r = (r + 1) % len(reps)
				}
			}
			outcomes[i] = o
		}()
	}
	close(start)
	wg.Wait()
	select {
	case <-cnt.killed:
	default:
		t.Fatalf("the kill never happened: %d tool calls in all", cnt.total)
	}

	byKey := map[string]string{}
	retried := 0
	for i, o := range outcomes {
		if o.status != "success" {
			t.Fatalf("request %d (%s) did not complete after %d tries: status %q, last error %v", i, o.key, o.tries, o.status, o.err)
		}
		if o.tries > 1 {
			retried++
		}
		if prev, ok := byKey[o.key]; ok && prev != o.trace {
			t.Fatalf("key %s ran twice: traces %s and %s", o.key, prev, o.trace)
		}
		byKey[o.key] = o.trace
	}
	t.Logf("%d requests, %d sent again after the kill", replicaRequests, retried)
	cnt.mu.Lock()
	again := 0
	for k := range replicaKeys {
		twice := 0
		for s := range replicaSteps {
			switch n := cnt.hits[fmt.Sprintf("/key-%d/s%d", k, s)]; n {
			case 1:
			case 2:
				twice++
			default:
				t.Errorf("key-%d step s%d ran %d times", k, s, n)
			}
		}
		if twice > 1 {
			t.Errorf("key-%d: %d steps ran twice; at most the one in flight at the kill may", k, twice)
		}
		again += twice
	}
	cnt.mu.Unlock()
	t.Logf("steps run again (in flight at the kill): %d", again)

	// One execution per key in the database.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var execs, running int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'running') FROM nanovm_executions`).Scan(&execs, &running); err != nil {
		t.Fatal(err)
	}
	if execs != replicaKeys || running != 0 {
		t.Fatalf("%d executions (%d running), want %d finished", execs, running, replicaKeys)
	}

	// The chain verifies from a surviving process.
	verify := exec.Command(binary, "audit", "verify", "--db", dsn, "--no-bundled-tools")
	verify.Env = env
	out, err := verify.CombinedOutput()
	want := fmt.Sprintf("audit chain verified: %d envelope(s)", replicaKeys*replicaSteps)
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestCLIOnPostgres ensures the CLI works on a PostgreSQL address as on a
// file: run (with an idempotency key, twice: the second a replay), audit
// verify, idempotency ls and rm, and that no error or output shows the
// address's password.
func TestCLIOnPostgres(t *testing.T) {
	base := pgtest.Fresh(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	// Trust authentication ignores the password, which lets the test
	// carry one and look for it.
	q := u.Query()
	q.Set("password", "pg-s3cret")
	u.RawQuery = q.Encode()
	dsn := u.String()
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	db := []string{"--db", dsn, "--cache-dir", sharedCache}
	runArgs := append([]string{"run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"), "--idempotency-key", "order-7"}, db...)
	var all strings.Builder
	for i, want := range []string{"SUCCESS  4 step(s)", "SUCCESS  4 step(s)"} {
		code, out, errOut := runCLI(t, "", runArgs...)
		all.WriteString(out + errOut)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("run %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	checks := []struct {
		args []string
		want string
	}{
		{append([]string{"audit", "verify"}, db...), "audit chain verified: 4 envelope(s)"},
		{append([]string{"idempotency", "ls"}, db...), `"order-7"`},
		{append([]string{"idempotency", "rm", "order-7"}, db...), ""},
	}
	for _, c := range checks {
		code, out, errOut := runCLI(t, "", c.args...)
		all.WriteString(out + errOut)
		if code != 0 || !strings.Contains(out+errOut, c.want) {
			t.Fatalf("%v: exit %d\n%s\n%s", c.args[:2], code, out, errOut)
		}
	}
	if code, out, _ := runCLI(t, "", append([]string{"idempotency", "ls"}, db...)...); code != 0 || strings.Contains(out, "order-7") {
		t.Fatalf("idempotency ls after rm: %d\n%s", code, out)
	}
	// A database that refuses: the error names it without the password.
	bad := strings.Replace(dsn, u.Host, "127.0.0.1:1", 1)
	if u.Host == "" {
		bad = "postgres://127.0.0.1:1/nano?password=pg-s3cret&connect_timeout=5"
	}
	code, out, errOut := runCLI(t, "", "audit", "verify", "--db", bad)
	all.WriteString(out + errOut)
	if code == 0 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("audit verify on a closed port: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(all.String(), "pg-s3cret") {
		t.Fatalf("the password appears in the CLI's output:\n%s", all.String())
	}
}
