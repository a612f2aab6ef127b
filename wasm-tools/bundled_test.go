package wasmtools

import (
	"bytes"
	"testing"
)

// Ensure All holds every bundled and every test module under its name,
// each the one Bundled or TestTools returns.
func TestAll(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, list := range []func() ([]Module, error){Bundled, TestTools} {
		mods, err := list()
		if err != nil {
			t.Fatal(err)
		}
		if len(mods) == 0 {
			t.Fatal("a module list is empty")
		}
		for _, m := range mods {
			n++
			got, ok := all[m.Name]
			if !ok || !bytes.Equal(got.Wasm, m.Wasm) || !bytes.Equal(got.Manifest, m.Manifest) {
				t.Errorf("All()[%q] = %v (present %v), not the module listed", m.Name, got.Name, ok)
			}
		}
	}
	if len(all) != n {
		t.Errorf("All holds %d modules, the lists %d", len(all), n)
	}
}
