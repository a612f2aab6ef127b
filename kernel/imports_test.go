package kernel_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Ensure the kernel and its sub-packages import only the standard library
// and each other: the kernel never touches persistence, policy, WebAssembly
// or MCP.
func TestKernelImportsStandardLibraryOnly(t *testing.T) {
	const self = "github.com/nanovm/nano-vm-mcp/kernel"
	// internal/jsonwrite (encoding/json's output without reflection)
	// imports only the standard library itself.
	const jsonwrite = "github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if p == self || strings.HasPrefix(p, self+"/") || p == jsonwrite || !strings.Contains(first, ".") {
				continue
			}
			t.Errorf("%s imports %q: the kernel may import only the standard library", path, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
