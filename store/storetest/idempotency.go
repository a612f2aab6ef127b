package storetest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
)

// testIdempotency ensures a key is claimed once, a repeat gets the stored
// record (pending or terminal), and another request on the key conflicts.
func testIdempotency(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	rec, claimed, err := st.ClaimIdempotencyKey(ctx, "k", "req-a", "exec-1", 0)
	if err != nil || !claimed {
		t.Fatalf("first claim = %v, %v", claimed, err)
	}
	if rec.Status != store.IdempotencyPending || rec.TraceID != "exec-1" || !rec.ExpiresAt.Equal(e.clock.Now().Add(store.DefaultIdempotencyTTL)) {
		t.Fatalf("claimed record = %+v", rec)
	}
	tests := []struct {
		name        string
		requestHash string
		traceID     string
		finish      string
		wantClaimed bool
		wantStatus  string
		wantErr     error
	}{
		{name: "repeat while pending", requestHash: "req-a", traceID: "exec-2", wantStatus: store.IdempotencyPending},
		{name: "other request", requestHash: "req-b", traceID: "exec-3", wantErr: store.ErrIdempotencyConflict},
		{name: "repeat after failure", requestHash: "req-a", traceID: "exec-4", finish: "failed", wantStatus: "failed"},
		{name: "other request after finish", requestHash: "req-b", traceID: "exec-5", wantErr: store.ErrIdempotencyConflict},
	}
	for _, tc := range tests {
		if tc.finish != "" {
			if err := st.FinishIdempotencyKey(ctx, "k", tc.finish); err != nil {
				t.Fatal(err)
			}
		}
		got, claimed, err := st.ClaimIdempotencyKey(ctx, "k", tc.requestHash, tc.traceID, 0)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if claimed != tc.wantClaimed || got.TraceID != "exec-1" || got.Status != tc.wantStatus {
			t.Errorf("%s: got %+v claimed=%v; want exec-1 status %q", tc.name, got, claimed, tc.wantStatus)
		}
	}
	if err := st.FinishIdempotencyKey(ctx, "nope", "success"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finish unknown key = %v, want ErrNotFound", err)
	}
	if err := st.FinishIdempotencyKey(ctx, "k", store.IdempotencyPending); err == nil {
		t.Error("finishing with the pending status succeeded")
	}
	bad := []string{"", string(make([]byte, 256))}
	for _, k := range bad {
		if _, _, err := st.ClaimIdempotencyKey(ctx, k, "r", "e", 0); err == nil {
			t.Errorf("claim of a %d-byte key succeeded", len(k))
		}
	}
}

// testIdempotencyExpiry ensures an expired key is ignored by reads, can be
// claimed afresh (even by another request), and is purged.
func testIdempotencyExpiry(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	for i, k := range []string{"a", "b", "c"} {
		if _, _, err := st.ClaimIdempotencyKey(ctx, k, "req", "exec-"+k, time.Duration(i+1)*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(2 * time.Hour) // a and b expire (b exactly now), c lives
	tests := []struct {
		key     string
		wantErr error
	}{
		{key: "a", wantErr: store.ErrNotFound},
		{key: "b", wantErr: store.ErrNotFound},
		{key: "c", wantErr: nil},
	}
	for _, tc := range tests {
		if _, err := st.IdempotencyKey(ctx, tc.key); !errors.Is(err, tc.wantErr) {
			t.Errorf("IdempotencyKey(%s) = %v, want %v", tc.key, err, tc.wantErr)
		}
	}
	rec, claimed, err := st.ClaimIdempotencyKey(ctx, "a", "another-request", "exec-new", time.Hour)
	if err != nil || !claimed || rec.TraceID != "exec-new" {
		t.Fatalf("claim of expired key = %+v, %v, %v", rec, claimed, err)
	}
	n, err := st.PurgeExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v; want 1 (b)", n, err)
	}
	if _, err := st.IdempotencyKey(ctx, "a"); err != nil {
		t.Errorf("re-claimed key a was purged: %v", err)
	}
	e.clock.Advance(2 * time.Hour)
	if n, err := st.PurgeExpired(ctx); err != nil || n != 2 {
		t.Fatalf("second PurgeExpired = %d, %v; want 2 (a, c)", n, err)
	}
	if n, err := st.PurgeExpired(ctx); err != nil || n != 0 {
		t.Fatalf("third PurgeExpired = %d, %v; want 0", n, err)
	}
}

// testIdempotencyConcurrentClaim ensures that of many concurrent claims of
// one key exactly one wins and all see its run.
func testIdempotencyConcurrentClaim(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	const n = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners int
		execs   = map[string]int{}
		errs    []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, claimed, err := st.ClaimIdempotencyKey(ctx, "k", "req", fmt.Sprint("exec-", i), 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if claimed {
				winners++
			}
			execs[rec.TraceID]++
		}()
	}
	wg.Wait()
	if len(errs) > 0 || winners != 1 || len(execs) != 1 {
		t.Fatalf("errs %v, winners %d, runs %v; want one winner seen by all", errs, winners, execs)
	}
}
