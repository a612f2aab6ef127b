package tools

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Ensure every bundled tool runs in a fresh instance and returns its
// documented result.
func TestBundledTools(t *testing.T) {
	r := newRegistry(t, "validate_amount", "reserve_funds", "capture_payment", "send_receipt",
		"get_order_amount", "get_order_status", "issue_refund", "send_rejection", "audit_log", "poll", "format_receipt")
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		want    any
		wantErr string
		wantLog string
	}{
		{name: "valid amount", tool: "validate_amount", args: map[string]any{"amount": 50000}, want: map[string]any{"valid": true, "amount": 50000.0}},
		{name: "negative amount", tool: "validate_amount", args: map[string]any{"amount": -5}, wantErr: `tool "validate_amount": amount must be positive`},
		{name: "zero amount", tool: "validate_amount", args: map[string]any{"amount": 0}, wantErr: "amount must be positive"},
		{name: "reserve", tool: "reserve_funds", args: map[string]any{"amount": 10}, want: map[string]any{"reservation_id": "res_" + hex16(fnv(`{"amount":10}`)), "status": "reserved", "amount": 10.0}},
		{name: "capture", tool: "capture_payment", args: map[string]any{}, want: map[string]any{"capture_id": "cap_" + hex16(fnv(`{}`)), "status": "captured"}},
		{name: "receipt", tool: "send_receipt", args: nil, want: map[string]any{"receipt_id": "rcpt_" + hex16(fnv(`{}`)), "status": "sent"}},
		{name: "order amount", tool: "get_order_amount", args: map[string]any{"order_id": "o-1"}, want: map[string]any{"order_id": "o-1", "amount": 1.0 + float64(fnv("o-1")%100000)}},
		{name: "order status paid", tool: "get_order_status", args: map[string]any{"order_id": "o-1"}, want: map[string]any{"order_id": "o-1", "status": "paid"}},
		{name: "order status cancelled", tool: "get_order_status", args: map[string]any{"order_id": "cancel-7"}, want: map[string]any{"order_id": "cancel-7", "status": "cancelled"}},
		{name: "order id required", tool: "get_order_status", args: map[string]any{}, wantErr: "invalid arguments"},
		{name: "refund", tool: "issue_refund", args: map[string]any{"order_id": "o-1"}, want: map[string]any{"refund_id": "rf_" + hex16(fnv(`{"order_id":"o-1"}`)), "status": "refunded", "order_id": "o-1"}},
		{name: "rejection", tool: "send_rejection", args: map[string]any{"order_id": "o-2"}, want: map[string]any{"rejection_id": "rej_" + hex16(fnv(`{"order_id":"o-2"}`)), "status": "rejected", "order_id": "o-2"}},
		{name: "audit", tool: "audit_log", args: map[string]any{"e": 1}, want: map[string]any{"logged": true, "entry_id": "aud_" + hex16(fnv(`{"e":1}`))}, wantLog: `audit: {"e":1}`},
		{name: "poll pending", tool: "poll", args: nil, want: "PENDING"},
		{name: "poll still pending", tool: "poll", args: map[string]any{"status": "PENDING"}, want: "PENDING"},
		{name: "poll done", tool: "poll", args: map[string]any{"status": "SUCCESS"}, want: map[string]any{"payment_status": "SUCCESS"}},
		{name: "go receipt", tool: "format_receipt", args: map[string]any{"order_id": "o-1", "amount": 50005},
			want: map[string]any{"order_id": "o-1", "amount": 50005.0, "currency": "USD", "text": "Order o-1: USD 500.05"}},
		{name: "go receipt error", tool: "format_receipt", args: map[string]any{"order_id": "o-1", "amount": 1.5}, wantErr: "amount must be a non-negative whole number"},
		{name: "go receipt schema", tool: "format_receipt", args: map[string]any{"amount": 1}, wantErr: "invalid arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), tt.tool, CallRequest{Args: tt.args})
			if failedWith(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(res.Output, tt.want) {
				t.Fatalf("output = %#v, want %#v", res.Output, tt.want)
			}
			if !strings.Contains(res.Log, tt.wantLog) {
				t.Fatalf("log = %q, want %q", res.Log, tt.wantLog)
			}
			if len(res.ModuleSHA256) != 64 || len(res.ManifestSHA256) != 64 {
				t.Fatalf("provenance missing: %+v", res)
			}
		})
	}
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func hex16(v uint64) string {
	const d = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = d[v&15]
		v >>= 4
	}
	return string(b)
}

// Ensure each hostile module gets its own specific error, and that a good
// tool still works after each (the host stays healthy).
func TestHostileModules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "inside.txt"), []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, "validate_amount", "trap", "oob", "exit3")
	register(t, r, "loop", func(m *Manifest) { m.Limits.TimeoutMS = 100 })
	register(t, r, "membomb", func(m *Manifest) { m.Limits.MemoryMiB = 1 })
	register(t, r, "flood", nil)
	register(t, r, "fs_escape", func(m *Manifest) {
		m.Mounts = []Mount{{HostPath: dir, GuestPath: "/data", ReadOnly: true}}
	})
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		want    string
		wantIs  error
		wantLog string
	}{
		{name: "infinite loop", tool: "loop", want: `tool "loop": timed out after 100ms`, wantIs: ErrTimeout},
		{name: "memory bomb", tool: "membomb", want: `tool "membomb": memory limit 1 MiB exceeded`, wantIs: ErrMemoryLimit},
		{name: "stdout flood", tool: "flood", want: `tool "flood": stdout exceeded 1048576 bytes`, wantIs: ErrOutputLimit},
		{name: "trap", tool: "trap", want: `tool "trap": trapped: unreachable`, wantIs: ErrTrap},
		{name: "out of bounds", tool: "oob", want: `tool "oob": trapped: out of bounds memory access`, wantIs: ErrTrap},
		{name: "exit 3", tool: "exit3", want: `tool "exit3": exited with code 3: giving up: 3`, wantLog: "giving up: 3"},
		{name: "no such file", tool: "fs_escape", args: map[string]any{"path": "/data/passwd"}, want: `tool "fs_escape": open /data/passwd: No such file or directory`, wantIs: ErrToolFailed},
		{name: "filesystem escape outside mounts", tool: "fs_escape", args: map[string]any{"path": "/etc/passwd"}, want: `tool "fs_escape": open /etc/passwd: Capabilities insufficient`, wantIs: ErrToolFailed},
		{name: "filesystem escape via dotdot", tool: "fs_escape", args: map[string]any{"path": "/data/../../../etc/passwd"}, want: `tool "fs_escape": open /data/../../../etc/passwd: Operation not permitted`, wantIs: ErrToolFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), tt.tool, CallRequest{Args: tt.args})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			var exit *ExitError
			if tt.tool == "exit3" && (!errors.As(err, &exit) || exit.Code != 3) {
				t.Fatalf("want ExitError code 3, got %v", err)
			}
			if !strings.Contains(res.Log, tt.wantLog) {
				t.Fatalf("log = %q, want %q", res.Log, tt.wantLog)
			}
			good, err := r.Call(context.Background(), "validate_amount", CallRequest{Args: map[string]any{"amount": 1}})
			if err != nil || good.Output.(map[string]any)["valid"] != true {
				t.Fatalf("good tool after %s: %v %v", tt.tool, good.Output, err)
			}
		})
	}
	// The mount works for a path inside it, so the escape test above
	// failed because of "..", not because nothing was mounted.
	res, err := r.Call(context.Background(), "fs_escape", CallRequest{Args: map[string]any{"path": "/data/inside.txt"}})
	if err != nil || res.Output.(map[string]any)["read"] != 2.0 {
		t.Fatalf("read inside mount: %v %v", res.Output, err)
	}
}

// Ensure a step timeout overrides the manifest's and a cancelled caller
// gets its own context error, not a timeout.
func TestCallTimeoutAndCancel(t *testing.T) {
	r := newRegistry(t, "loop")
	_, err := r.Call(context.Background(), "loop", CallRequest{Timeout: 50 * time.Millisecond})
	if err == nil || err.Error() != `tool "loop": timed out after 50ms` {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Call(ctx, "loop", CallRequest{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Ensure a tool without wasi:clock/wasi:random repeats identically and one
// with them does not.
func TestDeterminism(t *testing.T) {
	r := newRegistry(t)
	call := func() CallResult {
		t.Helper()
		res, err := r.Call(context.Background(), "clock_random", CallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	register(t, r, "clock_random", nil)
	a, b := call(), call()
	if !reflect.DeepEqual(a.Output, b.Output) {
		t.Fatalf("deterministic runs differ: %v vs %v", a.Output, b.Output)
	}
	register(t, r, "clock_random", func(m *Manifest) { m.Capabilities = []string{"wasi:clock", "wasi:random"} })
	c, d := call(), call()
	cm, dm := c.Output.(map[string]any), d.Output.(map[string]any)
	if cm["random"] == dm["random"] || reflect.DeepEqual(cm, a.Output) {
		t.Fatalf("real sources gave repeatable output: %v %v (deterministic %v)", cm, dm, a.Output)
	}
	if cm["time_ns"].(float64) < float64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()) {
		t.Fatalf("wasi:clock time %v is not the real clock", cm["time_ns"])
	}
}

// Ensure the Go-built reactor serves many calls on one pooled instance and
// the same module runs fresh, with identical results either way.
func TestGoReactor(t *testing.T) {
	r := newRegistry(t, "format_receipt")
	register(t, r, "format_receipt", func(m *Manifest) { m.Name = "format_receipt_fresh"; m.Isolation = IsolationFresh; m.PoolSize = 0 })
	register(t, r, "format_receipt", func(m *Manifest) { m.Name = "format_receipt_one"; m.PoolSize = 1 })
	tests := []struct {
		name string
		tool string
	}{
		{name: "pooled", tool: "format_receipt"},
		{name: "one instance", tool: "format_receipt_one"},
		{name: "fresh", tool: "format_receipt_fresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 5 {
				order := fmt.Sprintf("o-%d", i)
				res, err := r.Call(context.Background(), tt.tool, CallRequest{Args: map[string]any{"order_id": order, "amount": 100*i + 7, "currency": "EUR"}})
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("Order %s: EUR %d.07", order, i)
				if got := res.Output.(map[string]any)["text"]; got != want {
					t.Fatalf("call %d: text = %v, want %q", i, got, want)
				}
			}
			// A tool error leaves the instance usable.
			if _, err := r.Call(context.Background(), tt.tool, CallRequest{Args: map[string]any{"order_id": "x", "amount": -1}}); !errors.Is(err, ErrToolFailed) {
				t.Fatalf("err = %v, want ErrToolFailed", err)
			}
			if _, err := r.Call(context.Background(), tt.tool, CallRequest{Args: map[string]any{"order_id": "x", "amount": 1}}); err != nil {
				t.Fatalf("after a tool error: %v", err)
			}
		})
	}
}
