package main

import (
	"context"
	be "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
)

// rewriteChain rewrites a closed database file as someone holding the file
// would: edit changes the envelope at seq from, then that envelope's hash
// and every later envelope's prev_hash and hash are recomputed, and the
// chain head in the meta bucket set to the new last hash, so the whole
// chain verifies again. It returns the head hash before and after.
func rewriteChain(t *testing.T, path string, from uint64, edit func(*store.Envelope)) (before, after string) {
	t.Helper()
	runtimetest.UpdateFile(t, path, func(tx *bolt.Tx) error {
		envs := tx.Bucket([]byte("envelopes"))
		c := envs.Cursor()
		var prev string
		type put struct {
			k, v []byte
		}
		var puts []put
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e store.Envelope
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			seq := be.BigEndian.Uint64(k)
			before = e.Hash
			if seq < from {
				prev = e.Hash
				continue
			}
			if seq == from {
				edit(&e)
			}
			e.PrevHash = prev
			var err error
			if e.Hash, err = e.ComputeHash(); err != nil {
				return err
			}
			prev = e.Hash
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			puts = append(puts, put{append([]byte{}, k...), b})
		}
		for _, p := range puts {
			if err := envs.Put(p.k, p.v); err != nil {
				return err
			}
		}
		after = prev
		return setHead(tx, prev)
	})
	return before, after
}

// truncateChain deletes every envelope after seq keep, with its index
// entry, and records seq keep as the head: what is left verifies.
func truncateChain(t *testing.T, path string, keep uint64) {
	t.Helper()
	runtimetest.UpdateFile(t, path, func(tx *bolt.Tx) error {
		envs, idx := tx.Bucket([]byte("envelopes")), tx.Bucket([]byte("env_by_exec"))
		var head string
		var del [][]byte
		c := envs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e store.Envelope
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Seq <= keep {
				head = e.Hash
				continue
			}
			del = append(del, append([]byte{}, k...))
			if err := idx.Delete(append(append([]byte(e.TraceID), 0), k...)); err != nil {
				return err
			}
		}
		for _, k := range del {
			if err := envs.Delete(k); err != nil {
				return err
			}
		}
		return setHead(tx, head)
	})
}

func setHead(tx *bolt.Tx, hash string) error {
	k, _ := tx.Bucket([]byte("envelopes")).Cursor().Last()
	head, _ := json.Marshal(map[string]any{"seq": be.BigEndian.Uint64(k), "hash": hash})
	return tx.Bucket([]byte("meta")).Put([]byte("chain_head"), head)
}

// keygen runs audit keygen in dir and returns the signer and verifier key
// files.
func keygen(t *testing.T, dir, name string) (signer, verifier string) {
	t.Helper()
	code, out, errOut := runCLI(t, "", "audit", "keygen", name, "--dir", dir)
	signer, verifier = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if code != 0 || !strings.Contains(out, verifier) {
		t.Fatalf("keygen: exit %d\n%s\n%s", code, out, errOut)
	}
	return signer, verifier
}

// Ensure the acceptance scenario of signed checkpoints: a chain rewritten
// wholesale (one payload changed, every later envelope and the head
// recomputed) passes plain audit verify and fails audit verify
// --checkpoint against a checkpoint taken before, naming the seq; a
// checkpoint of a prefix the rewrite left alone still holds; a truncated
// chain is named truncated; and audit checkpoint refuses to replace the
// evidence.
func TestCheckpointCatchesWholesaleRewrite(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.db")
	d := []string{"--db", db, "--cache-dir", sharedCache}
	signer, verifier := keygen(t, dir, "ops")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{signer, 0o600}, {verifier, 0o644}} {
		if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != f.mode {
			t.Fatalf("%s: %v, mode %v; want %v", f.path, err, fi.Mode().Perm(), f.mode)
		}
	}
	if code, _, errOut := runCLI(t, "", "audit", "keygen", "ops", "--dir", dir); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: exit %d %s", code, errOut)
	}
	runPipeline := func() {
		t.Helper()
		args := append([]string{"run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"),
			"--policy", example("payment_pipeline", "policy.json")}, d...)
		if code, out, errOut := runCLI(t, "", args...); code != 0 {
			t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
		}
	}
	verify := func(db string, extra ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append([]string{"audit", "verify", "--db", db, "--cache-dir", sharedCache}, extra...)...)
	}

	runPipeline() // seq 1-4
	early := filepath.Join(dir, "early.checkpoint")
	code, out, errOut := runCLI(t, "", append([]string{"audit", "checkpoint", "--out", early, "--checkpoint-signer", signer}, d...)...)
	if code != 0 || !strings.Contains(out, "seq 4") {
		t.Fatalf("checkpoint: exit %d\n%s\n%s", code, out, errOut)
	}
	runPipeline() // seq 5-8
	t.Setenv("NANO_VM_MCP_CHECKPOINT_KEY_FILE", signer)
	code, note, errOut := runCLI(t, "", append([]string{"audit", "checkpoint"}, d...)...)
	if code != 0 || !strings.HasPrefix(note, "nano-vm-mcp/audit.db\n8\n") || !strings.Contains(note, "\n\n\u2014 ops ") {
		t.Fatalf("checkpoint to stdout: exit %d\n%s\n%s", code, note, errOut)
	}
	t.Setenv("NANO_VM_MCP_CHECKPOINT_KEY_FILE", "")
	late := filepath.Join(dir, "late.checkpoint")
	if err := os.WriteFile(late, []byte(note), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := verify(db, "--checkpoint", late, "--checkpoint-key", verifier); code != 0 || !strings.Contains(out, "holds: nano-vm-mcp/audit.db seq 8") {
		t.Fatalf("verify against a fresh checkpoint: exit %d\n%s\n%s", code, out, errOut)
	}
	truncated := filepath.Join(dir, "truncated.db")
	copyFile(t, db, truncated)

	before, after := rewriteChain(t, db, 6, func(e *store.Envelope) { e.Payload = json.RawMessage(`{"status":"refunded"}`) })
	if before == after {
		t.Fatal("the rewrite changed nothing")
	}
	code, out, errOut = verify(db)
	if code != 0 || !strings.Contains(out, "audit chain verified: 8 envelope(s)") || !strings.Contains(out, after) {
		t.Fatalf("plain verify of the rewritten chain: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = verify(db, "--checkpoint", late, "--checkpoint-key", verifier)
	if code != 1 || !strings.Contains(errOut, "does NOT extend checkpoint") || !strings.Contains(errOut, "(hash mismatch at seq 8)") || !strings.Contains(errOut, "hash at seq 8 differs") || !strings.Contains(errOut, "the chain itself verifies") {
		t.Fatalf("verify --checkpoint of the rewritten chain: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := verify(db, "--checkpoint", early, "--checkpoint-key", verifier); code != 0 || !strings.Contains(out, "seq 4") {
		t.Fatalf("a checkpoint before the rewritten seq still holds: exit %d\n%s\n%s", code, out, errOut)
	}
	// The evidence is not replaced.
	code, _, errOut = runCLI(t, "", append([]string{"audit", "checkpoint", "--out", late, "--checkpoint-signer", signer}, d...)...)
	if code == 0 || !strings.Contains(errOut, "refusing to replace") || readFile(t, late) != note {
		t.Fatalf("checkpoint over the evidence: exit %d %s", code, errOut)
	}

	// Cutting the chain's tail leaves steps 2 and 3 of the second run
	// without envelopes: plain verify sees those records uncovered, and
	// the checkpoint names the truncation itself.
	truncateChain(t, truncated, 6)
	if code, out, errOut := verify(truncated); code != 1 || !strings.Contains(errOut, "do not match their envelopes (chain intact, 6 envelope(s))") {
		t.Fatalf("plain verify of the truncated chain: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = verify(truncated, "--checkpoint", late, "--checkpoint-key", verifier, "--checkpoint-origin", "nano-vm-mcp/audit.db")
	if code != 1 || !strings.Contains(errOut, "(truncated at seq 7)") || !strings.Contains(errOut, "truncated at seq 7: the chain ends at seq 6") {
		t.Fatalf("verify --checkpoint of the truncated chain: exit %d\n%s", code, errOut)
	}
	// Without --checkpoint-origin the copy is another chain.
	if code, _, errOut := verify(truncated, "--checkpoint", late, "--checkpoint-key", verifier); code != 1 || !strings.Contains(errOut, "wrong origin") {
		t.Fatalf("verify --checkpoint on a renamed file: exit %d\n%s", code, errOut)
	}
	_, otherPub := keygen(t, t.TempDir(), "ops")
	if code, _, errOut := verify(db, "--checkpoint", early, "--checkpoint-key", otherPub); code != 1 || !strings.Contains(errOut, "untrusted key") {
		t.Fatalf("verify with another key: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := verify(db, "--checkpoint", early); code != 1 || !strings.Contains(errOut, "checkpoint_not_configured") {
		t.Fatalf("verify with no key: exit %d\n%s", code, errOut)
	}
	// The signer key alone serves as the verifier key; given a verifier
	// key file, verify does not read the signer key (here unreadable).
	if code, out, errOut := verify(db, "--checkpoint", early, "--checkpoint-signer", signer); code != 0 || !strings.Contains(out, "signed by ops") {
		t.Fatalf("verify with the signer key: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := verify(db, "--checkpoint", early, "--checkpoint-signer", filepath.Join(dir, "missing.key"), "--checkpoint-key", verifier); code != 0 {
		t.Fatalf("verify with a verifier key and a missing signer key: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Ensure checkpoint misconfiguration is a usage error naming the fix.
func TestCheckpointUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "u.db")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "every without file", args: []string{"serve", "--checkpoint-every", "10"}, want: "need --checkpoint-file"},
		{name: "file without signer", args: []string{"serve", "--checkpoint-file", filepath.Join(dir, "c")}, want: "needs a signer key"},
		{name: "bad every", args: []string{"serve", "--checkpoint-every", "ten"}, want: "number of envelopes"},
		{name: "short interval", args: []string{"serve", "--checkpoint-interval", "10ms"}, want: "at least 1s"},
		{name: "checkpoint without signer", args: []string{"audit", "checkpoint", "--db", db}, want: "needs a signer key"},
		{name: "checkpoint with --trace", args: []string{"audit", "verify", "--checkpoint", "x", "--trace", "y", "--db", db}, want: "drop --trace"},
		{name: "checkpoint with --execution", args: []string{"audit", "verify", "--checkpoint", "x", "--execution", "y", "--db", db}, want: "drop --trace"},
		{name: "keygen without name", args: []string{"audit", "keygen"}, want: "audit keygen NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "", tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", code, errOut, tc.want)
			}
		})
	}
	if code, _, errOut := runCLI(t, "", "audit", "keygen", "two words", "--dir", dir); code != 1 || !strings.Contains(errOut, "no spaces") {
		t.Fatalf("keygen with a space: exit %d %s", code, errOut)
	}
}

// Ensure serve writes the signed checkpoint to the operator's path once N
// envelopes were appended and again at shutdown, that the file verifies
// with audit verify --checkpoint, and that a server whose chain was
// rewritten since refuses to start rather than replace the evidence.
func TestServeWritesCheckpoints(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "served.db")
	cpFile := filepath.Join(dir, "head.checkpoint")
	signer, verifier := keygen(t, dir, "ops")
	env := append(e2eEnv(),
		"NANO_VM_MCP_CHECKPOINT_KEY_FILE="+signer,
		"NANO_VM_MCP_CHECKPOINT_FILE="+cpFile,
		"NANO_VM_MCP_CHECKPOINT_EVERY=3",
		"NANO_VM_MCP_LOG_LEVEL=info")
	p := launchStdio(t, stdioLaunch{name: "checkpoint", env: env, args: []string{"--transport", "stdio", "--db", db}})
	c, child, stderr := p.c, p.cmd, p.stderr
	program := readFile(t, example("payment_pipeline", "program.json"))
	input := readFile(t, example("payment_pipeline", "input.json"))
	var in map[string]any
	if err := json.Unmarshal([]byte(input), &in); err != nil {
		t.Fatal(err)
	}
	if res := callTool(t, c, "run_program", map[string]any{"program": program, "input": in}, false); res["status"] != "success" {
		t.Fatalf("run_program: %v", res)
	}
	// 4 envelopes >= 3: the writer's next poll writes seq 4. Wait for it
	// (the bound only keeps a broken writer from hanging the test).
	var first string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err := os.ReadFile(cpFile); err == nil {
			first = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint written after 4 envelopes; stderr:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(first, "nano-vm-mcp/served.db\n4\n") {
		t.Fatalf("periodic checkpoint:\n%s", first)
	}
	// A verify_audit with the checkpoint the server wrote: it trusts its
	// own signer's key.
	v := callTool(t, c, "verify_audit", map[string]any{"checkpoint": first}, false)
	if v["ok"] != true || fmt.Sprint(v["checkpoint"].(map[string]any)["size"]) != "4" {
		t.Fatalf("verify_audit: %v", v)
	}
	callTool(t, c, "put_secret", map[string]any{"id": "s", "value": "v"}, false)
	callTool(t, c, "erase_secret", map[string]any{"id": "s"}, false) // seq 5: not due (5-4 < 3)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil && !strings.Contains(err.Error(), "exit status") {
		t.Logf("wait: %v", err)
	}
	final := readFile(t, cpFile)
	if !strings.HasPrefix(final, "nano-vm-mcp/served.db\n5\n") {
		t.Fatalf("shutdown checkpoint:\n%s\nstderr:\n%s", final, stderr)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	if code, out, errOut := runCLI(t, "", "audit", "verify", "--db", db, "--checkpoint", cpFile, "--checkpoint-key", verifier); code != 0 || !strings.Contains(out, "seq 5") {
		t.Fatalf("audit verify --checkpoint: exit %d\n%s\n%s", code, out, errOut)
	}

	// Rewrite the chain; the server must not start and overwrite the file.
	rewriteChain(t, db, 2, func(e *store.Envelope) { e.StepID = "forged" })
	restart := exec.Command(binary, "--transport", "stdio", "--db", db)
	restart.Env = env
	stdin, _ := restart.StdinPipe()
	defer stdin.Close()
	var out strings.Builder
	restart.Stderr, restart.Stdout = &out, io.Discard
	if err := restart.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- restart.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "refusing to replace") || !strings.Contains(out.String(), "hash at seq 5 differs") {
			t.Fatalf("restart on a rewritten chain: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		restart.Process.Kill()
		t.Fatalf("the server started on a rewritten chain:\n%s", out.String())
	}
	if readFile(t, cpFile) != final {
		t.Fatal("the checkpoint file was replaced")
	}
}

// Ensure the writer with only an interval writes once the chain grew and
// the interval passed, again after the chain grows, and not at stop when
// nothing changed since.
func TestCheckpointWriterInterval(t *testing.T) {
	ctx := context.Background()
	skey, vkey, err := checkpoint.GenerateKey("ops")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(skey)
	rt := runtimetest.Open(t, runtime.Config{CheckpointSigner: signer, NoBundledTools: true})
	path := filepath.Join(t.TempDir(), "head.checkpoint")
	logs := &syncBuffer{}
	stop, err := startCheckpointWriter(rt, &checkpointFlags{file: path, intervalD: time.Second, poll: 10 * time.Millisecond}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := checkpoint.NewVerifier(vkey)
	waitFor := func(size uint64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if msg, err := os.ReadFile(path); err == nil {
				if c, _, err := v.Open(msg, rt.CheckpointOrigin()); err == nil && c.Size == size {
					return
				}
			}
		}
		t.Fatalf("no checkpoint of seq %d; log:\n%s", size, logs)
	}
	for want := uint64(1); want <= 2; want++ {
		if _, err := rt.Store().AppendEnvelope(ctx, store.Envelope{Kind: "test"}); err != nil {
			t.Fatal(err)
		}
		waitFor(want)
	}
	before, _ := os.Stat(path)
	stop()
	after, _ := os.Stat(path)
	if !after.ModTime().Equal(before.ModTime()) || strings.Count(logs.String(), "checkpoint written") != 2 {
		t.Fatalf("stop rewrote an unchanged checkpoint; log:\n%s", logs)
	}
}
