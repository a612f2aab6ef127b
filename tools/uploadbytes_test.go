package tools

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/store"
	w "github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// paddedCommand is a distinct valid command module of about size bytes
// (a custom section pads it), told apart by seed.
func paddedCommand(seed, size int) []byte {
	pad := make([]byte, max(size-64, 0))
	return w.Command(0, nil, []byte{0x0b}, w.Section(0, w.Name(fmt.Sprint("pad", seed)), pad))
}

// Ensure a client cannot exhaust the server's disk and memory with
// uploads: every uploaded module is stored for good (the audit keeps every
// version) and compiled code stays in memory, so the distinct module bytes
// uploads may store in all are bounded by Ceilings.UploadBytes, counted
// across restarts. The module of a refused upload is never compiled;
// operator tools and module bytes already stored do not count, each
// version record (its manifest) does.
func TestUploadBytesCeiling(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nano.db")
	open := func() (*Registry, *store.DB) {
		db, err := store.Open(path, store.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		h := newHost(t, HostOptions{Ceilings: Ceilings{UploadBytes: 1 << 20}})
		return NewRegistry(h, db, RegistryOptions{}), db
	}
	r, db := open()
	up := func(r *Registry, name string, wasm []byte) error {
		_, err := r.RegisterAs(ctx, toolrecord.SourceUpload, Manifest{Name: name, Version: "1"}, wasm)
		return err
	}
	for i := range 3 {
		if err := up(r, fmt.Sprint("u", i), paddedCommand(i, 300<<10)); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	// The same bytes under another name, and an operator tool, are free.
	if err := up(r, "again", paddedCommand(0, 300<<10)); err != nil {
		t.Fatalf("stored bytes again: %v", err)
	}
	if _, err := r.Register(ctx, Manifest{Name: "op", Version: "1"}, paddedCommand(99, 2<<20)); err != nil {
		t.Fatalf("operator tool: %v", err)
	}
	err := up(r, "u3", paddedCommand(3, 300<<10))
	if !errors.Is(err, ErrAboveCeiling) || !strings.Contains(err.Error(), "uploaded tools would store") || !strings.Contains(err.Error(), "1048576") {
		t.Fatalf("past the ceiling: %v", err)
	}
	if len(r.host.compiled) != 4 {
		t.Fatalf("%d modules compiled, want 4 (the refused one never is)", len(r.host.compiled))
	}
	// Removing a tool keeps its module (the audit trail), so it still counts,
	// and so does everything after a restart.
	if err := r.Remove(ctx, "u0"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r, db = open()
	defer db.Close()
	if err := up(r, "u4", paddedCommand(4, 300<<10)); !errors.Is(err, ErrAboveCeiling) {
		t.Fatalf("after a restart: %v", err)
	}
	if err := up(r, "small", paddedCommand(5, 10<<10)); err != nil {
		t.Fatalf("what still fits: %v", err)
	}
	// Every version record counts too: the same stored module under ever
	// new names (each a record with its manifest) runs out as well.
	for i := 0; ; i++ {
		err := up(r, fmt.Sprint("name", i), paddedCommand(5, 10<<10))
		if errors.Is(err, ErrAboveCeiling) {
			break
		}
		if err != nil || i > 1000 {
			t.Fatalf("name %d: %v", i, err)
		}
	}
}

// Ensure uploads waiting to be compiled count against the ceiling: many
// concurrent uploads would otherwise all pass the check, each holding its
// module while it waits for a compile slot, and the memory they hold
// would be bounded by nothing. Here the compile slots are taken, so the
// first upload waits, holding its share; the second, which would fit only
// without it, is refused at once.
func TestUploadBytesCountUploadsInFlight(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, HostOptions{Ceilings: Ceilings{UploadBytes: 1 << 20}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	for range cap(h.compileSlots) {
		h.compileSlots <- struct{}{}
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.RegisterAs(ctx, toolrecord.SourceUpload, Manifest{Name: "first", Version: "1"}, paddedCommand(1, 600<<10))
		done <- err
	}()
	for {
		r.regMu.Lock()
		pending := r.pending
		r.regMu.Unlock()
		if pending > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("first upload ended before it was compiled: %v", err)
		default:
		}
		runtime.Gosched()
	}
	_, err := r.RegisterAs(ctx, toolrecord.SourceUpload, Manifest{Name: "second", Version: "1"}, paddedCommand(2, 600<<10))
	if !errors.Is(err, ErrAboveCeiling) {
		t.Fatalf("second upload while the first waits: %v", err)
	}
	for range cap(h.compileSlots) {
		<-h.compileSlots
	}
	if err := <-done; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if r.pending != 0 {
		t.Fatalf("%d bytes still pending", r.pending)
	}
}
