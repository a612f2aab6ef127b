package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/nanovm/nano-vm-mcp"

// appPackages are the internal/ packages of the application (the binary's
// own machinery). Every other package under internal/ is a pure encoder:
// standard library only.
var appPackages = []string{"internal/primary", "internal/benchmark"}

// A layer is a set of packages of the module (by path relative to it) and
// what their non-test code may import. std and thirdParty say whether the
// standard library and other modules are allowed; allowed lists the
// layers of this module it may import (its own always).
type layer struct {
	name       string
	std        bool
	thirdParty bool
	allowed    []string
}

// The rules of DEVELOPMENT.md's "Import rules", layer by layer.
var layers = map[string]layer{
	"pure":       {name: "internal/ (pure encoders)", std: true, allowed: []string{"pure"}},
	"kernel":     {name: "kernel/", std: true, allowed: []string{"pure"}},
	"tools":      {name: "tools/", std: true, thirdParty: true, allowed: []string{"pure", "kernel"}},
	"store":      {name: "store/", std: true, thirdParty: true, allowed: []string{"pure", "kernel"}},
	"runtime":    {name: "runtime/", std: true, thirdParty: true, allowed: []string{"pure", "kernel", "tools", "store", "wasm-tools"}},
	"app":        {name: "internal/primary, internal/benchmark (application)", std: true, thirdParty: true, allowed: []string{"pure", "kernel", "tools", "store", "runtime", "wasm-tools", "app"}},
	"cmd":        {name: "cmd/", std: true, thirdParty: true, allowed: []string{"pure", "kernel", "tools", "store", "runtime", "wasm-tools", "app"}},
	"wasm-tools": {name: "wasm-tools/", std: true, thirdParty: true},
}

// layerOf returns the layer of a module package path relative to the
// module ("" for the module root), or "" when no rule covers it.
func layerOf(rel string) string {
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "internal":
		for _, a := range appPackages {
			if rel == a || strings.HasPrefix(rel, a+"/") {
				return "app"
			}
		}
		return "pure"
	case "kernel", "tools", "store", "runtime", "cmd", "wasm-tools":
		return top
	}
	return ""
}

type pkg struct {
	ImportPath   string
	Standard     bool
	Imports      []string
	TestImports  []string
	XTestImports []string
	Module       *struct{ Path string }
}

// listPackages runs `go list -deps -json ./...` at the module root: every
// package of the module and everything it imports.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	watchTree(t, root)
	cmd := exec.Command("go", "list", "-deps", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -json ./...: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// watchTree reads every folder of the tree and stats its Go files and
// go.mod: go test caches a result by the files the test itself touched,
// and the go list it runs touches the rest unseen, so without this an
// added import would leave the cached pass standing.
func watchTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod") {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk the module: %v", err)
	}
}

// rel returns path relative to the module and whether it is the module's.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func isStd(pkgs map[string]*pkg, path string) bool {
	if p, ok := pkgs[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// forbidden says why from (a module package) may not import to, or "".
func forbidden(pkgs map[string]*pkg, from, to string) string {
	fromRel, _ := rel(from)
	l := layers[layerOf(fromRel)]
	toRel, own := rel(to)
	switch {
	case !own && isStd(pkgs, to):
		if !l.std {
			return l.name + " may not import the standard library"
		}
		return ""
	case !own:
		if !l.thirdParty {
			names := []string{"the standard library"}
			for _, a := range l.allowed {
				names = append(names, layers[a].name)
			}
			return l.name + " may import only " + strings.Join(names, ", ")
		}
		return ""
	}
	toLayer := layerOf(toRel)
	if toLayer == layerOf(fromRel) || slices.Contains(l.allowed, toLayer) {
		return ""
	}
	return l.name + " may not import " + layers[toLayer].name
}

// TestImportGraph checks every import of every package of the module
// against the layout rules: the non-test code of each layer imports only
// what its layer allows, no package's tests import cmd/, and the kernel's
// tests keep to the kernel's own rule.
func TestImportGraph(t *testing.T) {
	pkgs := listPackages(t)
	var ours []*pkg
	for _, p := range pkgs {
		if _, own := rel(p.ImportPath); own && !p.Standard {
			ours = append(ours, p)
		}
	}
	slices.SortFunc(ours, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	if len(ours) < 20 {
		t.Fatalf("go list found %d packages of the module; want them all", len(ours))
	}
	for _, p := range ours {
		r, _ := rel(p.ImportPath)
		if p.Module != nil && p.Module.Path != module {
			continue // another module in this tree (the Go guest SDK)
		}
		if layerOf(r) == "" {
			t.Errorf("package %s is in no layer: add a rule for it to DEVELOPMENT.md and this test", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if why := forbidden(pkgs, p.ImportPath, imp); why != "" {
				t.Errorf("forbidden import %s -> %s: %s", p.ImportPath, imp, why)
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if ir, own := rel(imp); own && layerOf(ir) == "cmd" && layerOf(r) != "cmd" {
				t.Errorf("forbidden test import %s -> %s: nothing imports cmd/", p.ImportPath, imp)
			}
			if layerOf(r) == "kernel" && imp != p.ImportPath {
				if ir, own := rel(imp); !own || layerOf(ir) != "kernel" {
					if why := forbidden(pkgs, p.ImportPath, imp); why != "" {
						t.Errorf("forbidden test import %s -> %s: %s", p.ImportPath, imp, why)
					}
				}
			}
		}
	}
}
