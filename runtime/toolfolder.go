package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoModule is returned by FindToolModule when a tool folder holds no
// .wasm file, or several of which none is named after the tool.
var ErrNoModule = errors.New("no module")

// ReadToolFolder reads a tool's folder: its manifest.json and its one
// .wasm module, whatever that file is called (see FindToolModule). It
// returns the path of the module it read.
func ReadToolFolder(dir string) (manifest, wasm []byte, wasmPath string, err error) {
	manifest, err = os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, nil, "", fmt.Errorf("read tool folder %s: %w (a tool folder holds manifest.json and one .wasm file)", dir, err)
	}
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(manifest, &named) // a bad manifest is reported when it is parsed
	if wasmPath, err = FindToolModule(dir, named.Name); err != nil {
		return nil, nil, "", err
	}
	if wasm, err = os.ReadFile(wasmPath); err != nil {
		return nil, nil, "", fmt.Errorf("read tool folder %s: %w", dir, err)
	}
	return manifest, wasm, wasmPath, nil
}

// FindToolModule returns the path of the tool module in dir: its only
// .wasm file, whatever its name; among several, the one named after the
// tool (name.wasm) or, failing that, after the folder. Otherwise it
// returns an error wrapping ErrNoModule that lists what it found.
func FindToolModule(dir, name string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read tool folder %s: %w", dir, err)
	}
	var found []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".wasm") && e.Type().IsRegular() {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("read tool folder %s: %w: no .wasm file in it (a tool folder holds manifest.json and one .wasm file)", dir, ErrNoModule)
	case 1:
		return filepath.Join(dir, found[0]), nil
	}
	abs, _ := filepath.Abs(dir)
	for _, want := range []string{name, filepath.Base(abs)} {
		for _, f := range found {
			if want != "" && f == want+".wasm" {
				return filepath.Join(dir, f), nil
			}
		}
	}
	return "", fmt.Errorf("read tool folder %s: %w: %d .wasm files (%s) and none is named after the tool (%s.wasm): keep one, or name the module", dir, ErrNoModule, len(found), strings.Join(found, ", "), name)
}
