package kernel_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// declaredConsts returns the values of the constants of the named type
// declared in the kernel's trace.go, in declaration order.
func declaredConsts(t *testing.T, typeName string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "trace.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					out = append(out, lit.Value[1:len(lit.Value)-1])
				}
			}
		}
	}
	return out
}

// TestStatusesListsEveryConstant holds Statuses and StepStatuses, the lists
// the store, the MCP schemas and the CLI derive theirs from, to the
// constants declared: a status added without adding it to the list fails.
func TestStatusesListsEveryConstant(t *testing.T) {
	tests := []struct {
		typeName string
		list     []string
	}{
		{"Status", strs(kernel.Statuses())},
		{"StepStatus", strs(kernel.StepStatuses())},
	}
	for _, tt := range tests {
		t.Run(tt.typeName, func(t *testing.T) {
			want := declaredConsts(t, tt.typeName)
			if len(want) == 0 {
				t.Fatalf("no %s constants found in trace.go", tt.typeName)
			}
			if !slices.Equal(tt.list, want) {
				t.Fatalf("list %v, declared %v", tt.list, want)
			}
		})
	}
}

func TestStatusValid(t *testing.T) {
	tests := []struct {
		s    kernel.Status
		want bool
	}{
		{kernel.StatusRunning, true},
		{kernel.StatusSuspended, true},
		{kernel.StatusBudgetExceeded, true},
		{"", false},
		{"cancelled", false},
		{"RUNNING", false},
	}
	for _, tt := range tests {
		if got := tt.s.Valid(); got != tt.want {
			t.Errorf("%q.Valid() = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func strs[S ~string](l []S) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = string(s)
	}
	return out
}
