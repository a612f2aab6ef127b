// Package wasmtools ships the bundled tool modules (built .wasm and their
// manifests, embedded) and the test modules the sandbox tests load. The
// sources, the guest SDKs and the one rebuild script (build.sh) live beside
// it; this package needs no wasm toolchain.
package wasmtools

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

//go:embed tools/*/manifest.json tools/*/*.wasm
var bundled embed.FS

//go:embed testtools/*/manifest.json testtools/*/*.wasm
var testtools embed.FS

// Module is one tool: its manifest JSON and its WebAssembly module.
type Module struct {
	// Name is the directory name, which is also the manifest's name.
	Name string
	// Manifest is the manifest.json bytes, to be decoded by
	// tools.ParseManifest.
	Manifest []byte
	// Wasm is the module bytes.
	Wasm []byte
}

// Bundled returns the tools the server registers at start-up, sorted by
// name: the payment pipeline, the refund-benchmark tools, poll, the Go
// tool format_receipt and jq (gojq as a WASI command, called through its
// manifest's command section).
func Bundled() ([]Module, error) { return load(bundled, "tools") }

// TestTools returns the modules that exist for tests: the hostile ones
// (loop, membomb, memtouch, flood, trap, oob, exit3, forbidden_http,
// unknown_import, fs_escape, fs_rw), memhold for the memory budget, raw_echo,
// which prints its argument verbatim for the poison-data tests, and the
// capability demos (clock_random, secret_echo, secret_probe, http_get,
// state_echo, log_levels) and the Extism plugins (extism_v1, extism_v2,
// extism_ungranted, extism_hog). Never register these in production.
func TestTools() ([]Module, error) { return load(testtools, "testtools") }

// All maps every bundled and test module by name, for tests that take
// modules of both kinds.
func All() (map[string]Module, error) {
	out := map[string]Module{}
	for _, list := range []func() ([]Module, error){Bundled, TestTools} {
		mods, err := list()
		if err != nil {
			return nil, err
		}
		for _, m := range mods {
			if _, dup := out[m.Name]; dup {
				return nil, fmt.Errorf("module %s is both bundled and a test module", m.Name)
			}
			out[m.Name] = m
		}
	}
	return out, nil
}

func load(fsys embed.FS, dir string) ([]Module, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []Module
	for _, e := range entries {
		name := e.Name()
		m := Module{Name: name}
		if m.Manifest, err = fsys.ReadFile(path.Join(dir, name, "manifest.json")); err != nil {
			return nil, fmt.Errorf("read %s manifest: %w", name, err)
		}
		if m.Wasm, err = fsys.ReadFile(path.Join(dir, name, name+".wasm")); err != nil {
			return nil, fmt.Errorf("read %s module: %w", name, err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
