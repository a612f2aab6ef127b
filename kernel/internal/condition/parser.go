package condition

import (
	"fmt"
	"slices"
	"strings"
)

// op is the operation of an AST node. The zero value is invalid.
type op uint8

const (
	opInvalid op = iota
	opLit
	opVar
	opNot
	opAnd
	opOr
	opEq
	opNe
	opGt
	opGe
	opLt
	opLe
	opIn
	opNotIn
	opContains
)

var opNames = [...]string{
	opInvalid: "invalid", opLit: "literal", opVar: "variable",
	opNot: "not", opAnd: "and", opOr: "or",
	opEq: "==", opNe: "!=", opGt: ">", opGe: ">=", opLt: "<", opLe: "<=",
	opIn: "in", opNotIn: "not in", opContains: "contains",
}

// String returns the operator as written in a condition.
func (o op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// node is one node of the AST. and/or are n-ary so that a long chain
// `a or b or c …` is a flat list, not a deep tree: the evaluator's recursion
// depth is then bounded by MaxDepth alone.
type node struct {
	op   op
	kids []*node // and, or: 2 or more; not: 1; comparisons: left, right
	lit  value   // opLit
	path []string
}

var cmpOps = map[tokKind]op{
	tEq: opEq, tNe: opNe, tGt: opGt, tGe: opGe, tLt: opLt, tLe: opLe,
	tIn: opIn, tContains: opContains,
}

type parser struct {
	toks  []token
	pos   int
	depth int
	vars  [][]string
}

func (p *parser) peek() token { return p.toks[p.pos] }

// peekAt looks n tokens ahead; the token list always ends in tEOF or tErr,
// which the parser never moves past.
func (p *parser) peekAt(n int) token {
	if p.pos+n >= len(p.toks) {
		return p.toks[len(p.toks)-1]
	}
	return p.toks[p.pos+n]
}

// errAt reports msg at token t, unless t is a lexical error: that one is
// then the first problem in the source and wins.
func (p *parser) errAt(t token, format string, args ...any) *SyntaxError {
	if t.kind == tErr {
		return t.err
	}
	return &SyntaxError{Column: t.col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errAt(t, "nesting too deep (limit %d)", MaxDepth)
	}
	return nil
}

// nested parses, with parse and one level deeper, what follows t: a
// 'not' or an opening parenthesis.
func (p *parser) nested(t token, parse func() (*node, error)) (*node, error) {
	if err := p.enter(t); err != nil {
		return nil, err
	}
	p.pos++
	x, err := parse()
	p.depth--
	return x, err
}

// parseOr parses: and_expr ('or' and_expr)*.
func (p *parser) parseOr() (*node, error) {
	return p.parseChain(tOr, opOr, p.parseAnd)
}

// parseAnd parses: not_expr ('and' not_expr)*.
func (p *parser) parseAnd() (*node, error) {
	return p.parseChain(tAnd, opAnd, p.parseNot)
}

func (p *parser) parseChain(sep tokKind, o op, sub func() (*node, error)) (*node, error) {
	first, err := sub()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != sep {
		return first, nil
	}
	n := &node{op: o, kids: []*node{first}}
	for p.peek().kind == sep {
		p.pos++
		k, err := sub()
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, k)
	}
	return n, nil
}

// parseNot parses: 'not' not_expr | comparison. `not` binds looser than a
// comparison, as in Python: `not $a == 'x'` is `not ($a == 'x')`.
func (p *parser) parseNot() (*node, error) {
	t := p.peek()
	if t.kind != tNot {
		return p.parseComparison()
	}
	x, err := p.nested(t, p.parseNot)
	if err != nil {
		return nil, err
	}
	return &node{op: opNot, kids: []*node{x}}, nil
}

// comparisonOp reports the comparison operator at the current position and
// how many tokens it spans (2 for `not in`), or 0 if there is none.
func (p *parser) comparisonOp() (op, int) {
	t := p.peek()
	if o, ok := cmpOps[t.kind]; ok {
		return o, 1
	}
	if t.kind == tNot && p.peekAt(1).kind == tIn {
		return opNotIn, 2
	}
	return opInvalid, 0
}

// parseComparison parses: operand (cmp_op operand)?. Comparisons do not
// chain: Python's `1 < $a < 3` means `1 < $a and $a < 3`, which readers
// coming from other languages misread, so it is an error that says so.
func (p *parser) parseComparison() (*node, error) {
	left, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	o, width := p.comparisonOp()
	if width == 0 {
		if t := p.peek(); t.kind == tNot {
			return nil, p.errAt(p.peekAt(1), "expected 'in' after 'not', got %s", p.peekAt(1).describe())
		}
		return left, nil
	}
	p.pos += width
	right, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if _, w := p.comparisonOp(); w != 0 {
		t := p.peek()
		return nil, p.errAt(t, "comparisons cannot be chained; join them with 'and', as in '1 < $a and $a < 3'")
	}
	return &node{op: o, kids: []*node{left, right}}, nil
}

// parseOperand parses: $path | string | number | constant | '(' or_expr ')'.
func (p *parser) parseOperand() (*node, error) {
	t := p.peek()
	var n *node
	switch t.kind {
	case tVar:
		n = &node{op: opVar, path: t.path}
		if !slices.ContainsFunc(p.vars, func(v []string) bool { return slices.Equal(v, t.path) }) {
			p.vars = append(p.vars, t.path)
		}
	case tString:
		n = &node{op: opLit, lit: value{k: kString, s: t.str}}
	case tNumber:
		n = &node{op: opLit, lit: value{k: kNumber, n: t.num}}
	case tTrue, tFalse:
		n = &node{op: opLit, lit: value{k: kBool, b: t.kind == tTrue}}
	case tNull:
		n = &node{op: opLit, lit: value{k: kNull}}
	case tLParen:
		inner, err := p.nested(t, p.parseOr)
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, p.errAt(c, "expected ')' to close '(' at column %d, got %s", t.col, c.describe())
		}
		n = inner
	case tWord:
		if p.peekAt(1).kind == tLParen {
			return nil, p.errAt(p.peekAt(1), "calls are not allowed")
		}
		return nil, p.errAt(t, "%s", unknownWord(t.text))
	default:
		return nil, p.errAt(t, "expected a value, got %s", t.describe())
	}
	p.pos++
	if c := p.peek(); c.kind == tLParen {
		return nil, p.errAt(c, "calls are not allowed")
	}
	return n, nil
}

// unexpectedAfter reports a token left over after a complete expression.
func (p *parser) unexpectedAfter(t token) *SyntaxError {
	if t.kind == tRParen {
		return p.errAt(t, "unmatched ')'")
	}
	if t.kind == tWord {
		if _, ok := spellings[strings.ToLower(t.text)]; ok {
			return p.errAt(t, "%s", unknownWord(t.text))
		}
	}
	return p.errAt(t, "expected an operator, got %s", t.describe())
}

// spellings maps a lowercased keyword to how it may be written.
var spellings = map[string]string{
	"true": "True or true", "false": "False or false", "none": "None or null", "null": "None or null",
	"and": "and", "or": "or", "not": "not", "in": "in", "contains": "contains",
}

// unknownWord explains a bare word: most often a keyword in the wrong case
// or a string someone forgot to quote.
func unknownWord(w string) string {
	if s, ok := spellings[strings.ToLower(w)]; ok {
		return fmt.Sprintf("unknown word '%s'; write %s", w, s)
	}
	return fmt.Sprintf("unknown word '%s'; quote strings and prefix variables with '$'", w)
}
