package runtime_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// Ensure Replay reads the stored trace every time: a fresh runtime (no
// cached program) replays a run as equivalent, and after one stored step
// is altered on disk it reports that record, not a remembered answer.
func TestReplayReadsStoredTrace(t *testing.T) {
	ctx := context.Background()
	cfg := runtime.Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), VaultKey: runtimetest.VaultKey, Logger: quietLogger(), CacheDir: runtimetest.CacheDir}
	open := func() *runtime.Runtime {
		rt, err := runtime.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	rt := open()
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: readExample(t, "program.json"), Input: paymentInput()})
	if err != nil || res.Status != "success" {
		t.Fatalf("%+v %v", res, err)
	}
	if rep, err := rt.Replay(ctx, res.TraceID); err != nil || !rep.Equivalent || rep.Records != res.Steps {
		t.Fatalf("replay %+v %v", rep, err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rt = open()
	if rep, err := rt.Replay(ctx, res.TraceID); err != nil || !rep.Equivalent || rep.Records != res.Steps {
		t.Fatalf("replay in a fresh runtime %+v %v", rep, err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	const tampered = 1
	db, err := bolt.Open(cfg.DBPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("steps"))
		key := binary.BigEndian.AppendUint64(append([]byte(res.TraceID), 0), tampered)
		if v := b.Get(key); len(v) == 9 && v[0] == 0 {
			// A reference into the step log (schema 3): the record is there.
			b, key = tx.Bucket([]byte("step_log")), bytes.Clone(v[1:])
		}
		var rec map[string]any
		if err := json.Unmarshal(b.Get(key), &rec); err != nil {
			return err
		}
		rec["output"] = map[string]any{"tampered": rec["output"]}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(key, v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	rt = open()
	defer rt.Close()
	rep, err := rt.Replay(ctx, res.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Equivalent || rep.Divergence == nil || rep.Divergence.Index != tampered {
		t.Fatalf("replay of a tampered trace: %+v %+v", rep, rep.Divergence)
	}
}

// Ensure a run that suspended and was resumed replays as equivalent, its
// resume record included.
func TestReplayResumedRun(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	prog := `{"name":"momo","steps":[
		{"id":"poll","type":"tool","tool":"poll","output_key":"poll_result"},
		{"id":"check","type":"condition","condition":"$poll_result.payment_status == 'SUCCESS'","then":"ok","otherwise":"pending"},
		{"id":"ok","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true},
		{"id":"pending","type":"tool","tool":"audit_log","is_terminal":true}]}`
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"order_id": "o1"}})
	if err != nil || res.Status != "suspended" {
		t.Fatalf("%+v %v", res, err)
	}
	done, err := rt.Resume(ctx, res.TraceID, map[string]any{"payment_status": "SUCCESS", "note": "<&>"}, "OPERATOR", nil)
	if err != nil || done.Status != "success" {
		t.Fatalf("resume %+v %v", done, err)
	}
	rep, err := rt.Replay(ctx, res.TraceID)
	if err != nil || !rep.Equivalent || rep.Records != done.Steps {
		t.Fatalf("replay %+v %v", rep, err)
	}
}

// Ensure replaying an unknown trace is a not-found error.
func TestReplayUnknownTrace(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	_, err := rt.Replay(context.Background(), "no-such-trace")
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeNotFound {
		t.Fatalf("err %v", err)
	}
}
