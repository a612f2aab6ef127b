package tools

import (
	"context"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// modules maps every bundled and test module by name.
func modules(t testing.TB) map[string]wasmtools.Module {
	t.Helper()
	out := map[string]wasmtools.Module{}
	for _, f := range []func() ([]wasmtools.Module, error){wasmtools.Bundled, wasmtools.TestTools} {
		ms, err := f()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out[m.Name] = m
		}
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
	if _, err := r.Register(context.Background(), m, mod.Wasm); err != nil {
		t.Fatal(err)
	}
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
