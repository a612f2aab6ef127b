package condition

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
)

// kind is the JSON type of a value. The zero value is kNull.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kList
	kObject
)

var kindNames = [...]string{kNull: "null", kBool: "boolean", kNumber: "number", kString: "string", kList: "list", kObject: "object"}

// String returns the JSON type name used in error messages.
func (k kind) String() string { return kindNames[k] }

// maxValueDepth bounds the recursion of deep equality over data from the
// lookup. It matches encoding/json's nesting limit, so any value decoded
// from JSON compares; only a cyclic Go value can reach it.
const maxValueDepth = 10000

// value is one JSON value, unboxed so that evaluation does not allocate:
// scalars live in b, n or s; a list or object stays in x as the caller's
// []any or map[string]any.
type value struct {
	k kind
	b bool
	n float64
	s string
	x any
}

func boolValue(b bool) value { return value{k: kBool, b: b} }

// toValue classifies a Go value from the lookup.
func toValue(raw any) (value, *EvalError) {
	switch v := raw.(type) {
	case nil:
		return value{}, nil
	case bool:
		return value{k: kBool, b: v}, nil
	case float64:
		return value{k: kNumber, n: v}, nil
	case string:
		return value{k: kString, s: v}, nil
	case []any:
		return value{k: kList, x: raw}, nil // raw, not v: re-boxing v would allocate
	case map[string]any:
		return value{k: kObject, x: raw}, nil
	case int:
		return value{k: kNumber, n: float64(v)}, nil
	case int64:
		return value{k: kNumber, n: float64(v)}, nil
	case json.Number:
		n, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return value{}, evalErrorf("invalid json.Number %q", string(v))
		}
		return value{k: kNumber, n: n}, nil
	case float32:
		return value{k: kNumber, n: float64(v)}, nil
	case int8:
		return value{k: kNumber, n: float64(v)}, nil
	case int16:
		return value{k: kNumber, n: float64(v)}, nil
	case int32:
		return value{k: kNumber, n: float64(v)}, nil
	case uint:
		return value{k: kNumber, n: float64(v)}, nil
	case uint8:
		return value{k: kNumber, n: float64(v)}, nil
	case uint16:
		return value{k: kNumber, n: float64(v)}, nil
	case uint32:
		return value{k: kNumber, n: float64(v)}, nil
	case uint64:
		return value{k: kNumber, n: float64(v)}, nil
	}
	return value{}, evalErrorf("unsupported value type %T; conditions compare JSON data only", raw)
}

// truthy is Python's truthiness: null, false, 0, "", [] and {} are false.
func (v value) truthy() bool {
	switch v.k {
	case kBool:
		return v.b
	case kNumber:
		return v.n != 0
	case kString:
		return v.s != ""
	case kList:
		return len(v.x.([]any)) > 0
	case kObject:
		return len(v.x.(map[string]any)) > 0
	}
	return false
}

// equal is deep JSON equality: different types are unequal, numbers compare
// numerically whatever their Go type. Objects are compared key by key in
// sorted order so that, when an element is not JSON data, whether that is
// reported does not depend on map iteration order.
func equal(a, b value, depth int) (bool, *EvalError) {
	if a.k != b.k {
		return false, nil
	}
	switch a.k {
	case kNull:
		return true, nil
	case kBool:
		return a.b == b.b, nil
	case kNumber:
		return a.n == b.n, nil
	case kString:
		return a.s == b.s, nil
	}
	if depth >= maxValueDepth {
		return false, evalErrorf("values nested deeper than %d levels", maxValueDepth)
	}
	if a.k == kList {
		la, lb := a.x.([]any), b.x.([]any)
		if len(la) != len(lb) {
			return false, nil
		}
		if len(la) > 0 && &la[0] == &lb[0] {
			return true, nil // the same backing array; also ends self-reference
		}
		for i := range la {
			if eq, err := equalAny(la[i], lb[i], depth+1); err != nil || !eq {
				return false, err
			}
		}
		return true, nil
	}
	ma, mb := a.x.(map[string]any), b.x.(map[string]any)
	if len(ma) != len(mb) {
		return false, nil
	}
	if reflect.ValueOf(ma).UnsafePointer() == reflect.ValueOf(mb).UnsafePointer() {
		return true, nil
	}
	keys := make([]string, 0, len(ma))
	for k := range ma {
		if _, ok := mb[k]; !ok {
			return false, nil
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if eq, err := equalAny(ma[k], mb[k], depth+1); err != nil || !eq {
			return false, err
		}
	}
	return true, nil
}

func equalAny(a, b any, depth int) (bool, *EvalError) {
	va, err := toValue(a)
	if err != nil {
		return false, err
	}
	vb, err := toValue(b)
	if err != nil {
		return false, err
	}
	return equal(va, vb, depth)
}
