package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMutationsGoThroughTheJournal ensures no code of the package
// mutates the bbolt file except through put, del and createBucket
// (which record every operation in the journal), the journal's replay,
// and the committer's transactions: a Put that bypassed the recorder
// would commit unsynced and be lost by a power cut. It reads the
// package's source, so a new direct write fails it.
func TestMutationsGoThroughTheJournal(t *testing.T) {
	mutators := []string{"Put", "Delete", "CreateBucket", "CreateBucketIfNotExists", "DeleteBucket",
		"SetSequence", "NextSequence", "MoveBucket", "Update", "Batch", "Begin"}
	allowed := map[string][]string{
		"journal_ops.go": {"Put", "Delete", "CreateBucketIfNotExists"}, // put, del, createBucket, applyOps
		"journal_db.go":  {"Update", "Delete"},                         // replay; recorders.Delete
		"commit.go":      {"Update", "Begin"},                          // the committer's transactions
		"opentx.go":      {"Begin"},                                    // the committer's open transaction
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !slices.Contains(mutators, sel.Sel.Name) {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "crc32" {
				return true // crc32.Update
			}
			if sel.Sel.Name == "Begin" && len(call.Args) == 1 {
				if id, ok := call.Args[0].(*ast.Ident); ok && id.Name == "false" {
					return true // a read transaction
				}
			}
			if slices.Contains(allowed[name], sel.Sel.Name) {
				return true
			}
			t.Errorf("%s: .%s(…) writes to bbolt around the journal: use put, del or createBucket inside a write the committer runs", fset.Position(call.Pos()), sel.Sel.Name)
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("checked %d files: not run in the package's folder?", checked)
	}
}
