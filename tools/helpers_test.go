package tools

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// modules maps every bundled and test module by name.
func modules(t testing.TB) map[string]wasmtools.Module {
	t.Helper()
	out, err := wasmtools.All()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newHost returns a host closed at the end of the test.
func newHost(t testing.TB, opts HostOptions) *Host {
	t.Helper()
	h, err := NewHost(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// register registers the named module with its manifest, edited by edit.
func register(t testing.TB, r *Registry, name string, edit func(*Manifest)) {
	t.Helper()
	m, wasm := editedModule(t, name, edit)
	if _, err := r.Register(context.Background(), m, wasm); err != nil {
		t.Fatal(err)
	}
}

// editedModule is the named test module's manifest, edited by edit, and
// its bytes.
func editedModule(t testing.TB, name string, edit func(*Manifest)) (Manifest, []byte) {
	t.Helper()
	mod, ok := modules(t)[name]
	if !ok {
		t.Fatalf("no module %q", name)
	}
	m, err := ParseManifest(mod.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&m)
	}
	return m, mod.Wasm
}

// failedWith checks a case's error: with want, err must say it and
// failedWith returns true (the case ends there); without, err must be nil.
func failedWith(t testing.TB, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	return true
}

// failedKind is failedWith that also holds a wanted error to kind.
func failedKind(t testing.TB, err, kind error, want string) bool {
	t.Helper()
	if !failedWith(t, err, want) {
		return false
	}
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	return true
}

// failedAs is failedWith for a sentinel: with want, err must be it.
func failedAs(t testing.TB, err, want error) bool {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	return true
}

// newRegistry returns a registry on a fresh host and memory store with the
// named modules registered unchanged.
func newRegistry(t testing.TB, names ...string) *Registry {
	t.Helper()
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	for _, n := range names {
		register(t, r, n, nil)
	}
	return r
}

// recordFor builds the record Register would store, without storing it.
func recordFor(m Manifest, cm *compiledModule) toolrecord.Record {
	canon, sum, _ := m.canonical()
	return toolrecord.Record{Name: m.Name, ModuleSHA256: cm.sha256, ManifestSHA256: sum, Manifest: canon}
}

// compiled is the named test module's manifest, edited by edit, and the
// module compiled by h: no gate A has looked at its imports.
func compiled(t testing.TB, h *Host, name string, edit func(*Manifest)) (Manifest, *compiledModule) {
	t.Helper()
	m, wasm := editedModule(t, name, edit)
	cm, err := h.compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	return m, cm
}

// prepared prepares m's tool from cm with granted as its link set, as if
// gate A had admitted it: what gate B and the call-time checks refuse is
// then theirs alone.
func prepared(t testing.TB, h *Host, m Manifest, cm *compiledModule, granted []string) *Tool {
	t.Helper()
	tool, err := h.prepare(context.Background(), recordFor(m, cm), m, cm, granted)
	if err != nil {
		t.Fatal(err)
	}
	return tool
}

// keptHeld is the budget the kept instances of h's resettable tools hold
// (reset.go): their memories and tables.
func keptHeld(h *Host) uint64 {
	h.poolsMu.Lock()
	keepers := slices.Clone(h.keepers)
	h.poolsMu.Unlock()
	var n uint64
	for _, t := range keepers {
		t.keptMu.Lock()
		for _, s := range t.kept {
			n += s.mem.charged + s.inst.tables
		}
		t.keptMu.Unlock()
	}
	return n
}

// closeKept closes the kept instances of the tool name resolves to.
func closeKept(t testing.TB, r *Registry, name string) {
	t.Helper()
	tool, err := r.Resolve(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for s := tool.takeKept(); s != nil; s = tool.takeKept() {
		s.closeKept(tool.host)
	}
}
