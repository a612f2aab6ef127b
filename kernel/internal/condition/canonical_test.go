package condition

import (
	"strconv"
	"strings"
)

// canonical prints the AST back as source with the fewest parentheses that
// keep its shape. The fuzz target checks that Parse(canonical(e)) has the
// same canonical form and the same value as e, which tests the parser's
// precedence and associativity against an independent printer.
func canonical(e *Expr) string {
	var b strings.Builder
	printNode(&b, e.root)
	return b.String()
}

// prec is the binding strength of a node's top operator: or 1, and 2,
// not 3, comparisons 4, operands 5.
func prec(n *node) int {
	switch n.op {
	case opOr:
		return 1
	case opAnd:
		return 2
	case opNot:
		return 3
	case opLit, opVar:
		return 5
	}
	return 4
}

func printChild(b *strings.Builder, n *node, min int) {
	if prec(n) < min {
		b.WriteByte('(')
		printNode(b, n)
		b.WriteByte(')')
		return
	}
	printNode(b, n)
}

func printNode(b *strings.Builder, n *node) {
	switch n.op {
	case opLit:
		printLit(b, n.lit)
	case opVar:
		b.WriteString(pathString(n.path))
	case opNot:
		b.WriteString("not ")
		printChild(b, n.kids[0], 3)
	case opAnd, opOr:
		// A nested chain of the same operator came from parentheses; keep them.
		min := prec(n) + 1
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(" " + n.op.String() + " ")
			}
			printChild(b, k, min)
		}
	default:
		printChild(b, n.kids[0], 5)
		b.WriteString(" " + n.op.String() + " ")
		printChild(b, n.kids[1], 5)
	}
}

func printLit(b *strings.Builder, v value) {
	switch v.k {
	case kNull:
		b.WriteString("null")
	case kBool:
		b.WriteString(strconv.FormatBool(v.b))
	case kNumber:
		b.WriteString(strconv.FormatFloat(v.n, 'g', -1, 64))
	case kString:
		b.WriteByte('"')
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
		b.WriteString(r.Replace(v.s))
		b.WriteByte('"')
	}
}
