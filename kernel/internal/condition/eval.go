package condition

import "strings"

// eval computes the value of n. Recursion follows the AST, whose depth
// Parse bounds by MaxDepth.
func eval(n *node, lookup func([]string) (any, bool)) (value, error) {
	switch n.op {
	case opLit:
		return n.lit, nil
	case opVar:
		if lookup == nil {
			return value{}, nil
		}
		raw, ok := lookup(n.path)
		if !ok {
			return value{}, nil
		}
		v, err := toValue(raw)
		if err != nil {
			return value{}, evalErrorf("%s: %s", pathString(n.path), err.Msg)
		}
		return v, nil
	case opNot:
		v, err := eval(n.kids[0], lookup)
		if err != nil {
			return value{}, err
		}
		return boolValue(!v.truthy()), nil
	case opAnd, opOr:
		// and stops at the first false operand, or at the first true one.
		stop := n.op == opOr
		for _, k := range n.kids {
			v, err := eval(k, lookup)
			if err != nil {
				return value{}, err
			}
			if v.truthy() == stop {
				return boolValue(stop), nil
			}
		}
		return boolValue(!stop), nil
	}
	l, err := eval(n.kids[0], lookup)
	if err != nil {
		return value{}, err
	}
	r, err := eval(n.kids[1], lookup)
	if err != nil {
		return value{}, err
	}
	b, cerr := compare(n.op, l, r)
	if cerr != nil {
		return value{}, cerr
	}
	return boolValue(b), nil
}

// compare applies a comparison operator.
func compare(o op, l, r value) (bool, *EvalError) {
	switch o {
	case opEq:
		return equal(l, r, 0)
	case opNe:
		eq, err := equal(l, r, 0)
		return !eq, err
	case opGt, opGe, opLt, opLe:
		return order(o, l, r)
	case opIn:
		return member(o, l, r)
	case opNotIn:
		in, err := member(o, l, r)
		return !in, err
	case opContains:
		return member(o, r, l)
	}
	return false, evalErrorf("evaluate condition: unknown operator %s", o)
}

// order compares two numbers or two strings; strings compare by code point
// (byte order of UTF-8 is code-point order).
func order(o op, l, r value) (bool, *EvalError) {
	var c int
	switch {
	case l.k == kNumber && r.k == kNumber:
		// Written out rather than cmp.Compare so that NaN, which JSON cannot
		// carry but a Go caller can, makes every ordering false.
		switch o {
		case opGt:
			return l.n > r.n, nil
		case opGe:
			return l.n >= r.n, nil
		case opLt:
			return l.n < r.n, nil
		default:
			return l.n <= r.n, nil
		}
	case l.k == kString && r.k == kString:
		c = strings.Compare(l.s, r.s)
	default:
		return false, evalErrorf("'%s' not supported between %s and %s", o, l.k, r.k)
	}
	switch o {
	case opGt:
		return c > 0, nil
	case opGe:
		return c >= 0, nil
	case opLt:
		return c < 0, nil
	default:
		return c <= 0, nil
	}
}

// member reports whether needle is in hay: a substring of a string, an
// element of a list (deep equality) or a key of an object. o is the
// operator as written, for messages; for contains the operands are swapped
// by the caller, so the messages name the sides as the user wrote them.
func member(o op, needle, hay value) (bool, *EvalError) {
	haySide, needleSide := "right", "left"
	if o == opContains {
		haySide, needleSide = "left", "right"
	}
	switch hay.k {
	case kString:
		if needle.k != kString {
			return false, evalErrorf("'%s' with a string on the %s needs a string on the %s, got %s", o, haySide, needleSide, needle.k)
		}
		return strings.Contains(hay.s, needle.s), nil
	case kList:
		for _, e := range hay.x.([]any) {
			ev, err := toValue(e)
			if err != nil {
				return false, err
			}
			eq, err := equal(needle, ev, 1)
			if err != nil {
				return false, err
			}
			if eq {
				return true, nil
			}
		}
		return false, nil
	case kObject:
		if needle.k != kString {
			return false, evalErrorf("'%s' with an object on the %s needs a string key on the %s, got %s", o, haySide, needleSide, needle.k)
		}
		_, ok := hay.x.(map[string]any)[needle.s]
		return ok, nil
	}
	return false, evalErrorf("'%s' needs a string, list or object on the %s, got %s", o, haySide, hay.k)
}
