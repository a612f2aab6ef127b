package condition

import (
	"fmt"
	"slices"
	"strings"
)

const (
	// MaxLength is the longest source Parse accepts, in bytes (64 KiB).
	// Conditions are one-line guards; anything longer is a mistake or an
	// attack on the validator.
	MaxLength = 64 << 10
	// MaxDepth is the deepest nesting of parentheses and `not` Parse accepts.
	// It bounds the recursion of both the parser and the evaluator.
	MaxDepth = 256
)

// Expr is a compiled condition. It is immutable, so one Expr may be
// evaluated by many goroutines at once. The zero Expr is not a valid
// condition: its Eval returns an *EvalError.
type Expr struct {
	src  string
	root *node
	vars [][]string
}

// Parse compiles a condition. Errors are *SyntaxError, reporting the first
// problem in the source.
func Parse(src string) (*Expr, error) {
	if len(src) > MaxLength {
		return nil, &SyntaxError{Column: 1, Msg: fmt.Sprintf("condition longer than %d bytes", MaxLength)}
	}
	p := &parser{toks: lex(src)}
	if p.toks[0].kind == tEOF {
		return nil, &SyntaxError{Column: 1, Msg: "empty condition"}
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpectedAfter(t)
	}
	return &Expr{src: src, root: root, vars: p.vars}, nil
}

// String returns the source text the expression was parsed from.
func (e *Expr) String() string {
	if e == nil {
		return ""
	}
	return e.src
}

// Vars lists the variable paths the expression references, each once, in
// order of first appearance; `$poll_result.payment_status` is
// ["poll_result", "payment_status"]. The slices are copies the caller may
// keep or modify.
func (e *Expr) Vars() [][]string {
	if e == nil {
		return nil
	}
	out := make([][]string, len(e.vars))
	for i, v := range e.vars {
		out[i] = slices.Clone(v)
	}
	return out
}

// Eval evaluates the condition. lookup resolves a variable path such as
// ["poll_result", "payment_status"] for `$poll_result.payment_status`;
// ok=false means the path is missing, which evaluates as null rather than
// failing. A nil lookup treats every path as missing. Values must be JSON
// data: nil, bool, float64 (or any Go integer or float type, or
// json.Number), string, []any and map[string]any. A type error such as
// `'abc' > 1` returns an *EvalError.
//
// Eval does not allocate unless it returns an error or compares two objects
// for equality.
func (e *Expr) Eval(lookup func(path []string) (any, bool)) (bool, error) {
	if e == nil || e.root == nil {
		return false, &EvalError{Msg: "evaluate condition: expression was not produced by Parse"}
	}
	v, err := eval(e.root, lookup)
	if err != nil {
		return false, err
	}
	return v.truthy(), nil
}

// pathString renders a path as it is written in a condition, for messages.
func pathString(path []string) string {
	return "$" + strings.Join(path, ".")
}
