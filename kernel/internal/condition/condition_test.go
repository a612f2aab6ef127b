package condition

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// testContext is the JSON data the tests and the fuzz target evaluate against.
const testContext = `{
	"a": 1, "b": 0, "c": true, "f": false, "n": null,
	"s": "hello", "e": "", "decision": "yes", "intent": "refund request",
	"list": [1, "two", null, [3], {"k": "v"}], "empty_list": [], "empty_obj": {},
	"obj": {"k": "v", "n": {"m": 2}}, "obj2": {"n": {"m": 2.0}, "k": "v"},
	"poll_result": {"payment_status": "SUCCESS"},
	"x-y": "hyphen", "_u": 7, "résumé": "ok", "big": 1e300, "neg": -3.5
}`

func mustContext(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(testContext), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// lookupIn resolves a path by walking nested objects, as the kernel does.
func lookupIn(root map[string]any) func([]string) (any, bool) {
	return func(path []string) (any, bool) {
		var cur any = root
		for _, seg := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[seg]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
}

// TestEval ensures the operators, precedence, truthiness and type rules of
// the language give the documented result for each expression.
func TestEval(t *testing.T) {
	lookup := lookupIn(mustContext(t))
	tests := []struct {
		name    string
		src     string
		want    bool
		wantErr string // exact EvalError message when non-empty
	}{
		// Equality.
		{name: "string equality", src: `$decision == "yes"`, want: true},
		{name: "single quotes", src: `$decision == 'yes'`, want: true},
		{name: "nested path", src: `$poll_result.payment_status == 'SUCCESS'`, want: true},
		{name: "not equal", src: `$decision != 'no'`, want: true},
		{name: "int equals decimal", src: `$a == 1.0`, want: true},
		{name: "exponent", src: `$big == 1e300`, want: true},
		{name: "negative number", src: `$neg == -3.5`, want: true},
		{name: "different types unequal", src: `$a == '1'`, want: false},
		{name: "different types not equal", src: `$a != '1'`, want: true},
		{name: "bool is not number", src: `$c == 1`, want: false},
		{name: "null equals null", src: `$n == null`, want: true},
		{name: "None equals null", src: `None == null`, want: true},
		{name: "True equals true", src: `True == true and False == false`, want: true},
		{name: "deep list equality", src: `$list == $list`, want: true},
		{name: "deep object equality regardless of order", src: `$obj == $obj2`, want: true},
		{name: "object vs list", src: `$obj == $list`, want: false},
		{name: "literal equality", src: `'ok' == 'ok'`, want: true},
		{name: "escapes", src: `'it\'s' == "it's" and "a\"b" == 'a"b' and '\\' != '\n'`, want: true},
		{name: "tab escape", src: `'\t' != 't'`, want: true},
		// Missing paths are null.
		{name: "missing is null", src: `$nope == null`, want: true},
		{name: "missing nested is null", src: `$poll_result.nope.deeper == None`, want: true},
		{name: "path through a string is missing", src: `$s.length == null`, want: true},
		{name: "missing is falsy", src: `$nope`, want: false},
		{name: "not missing", src: `not $nope`, want: true},
		// Ordering.
		{name: "number greater", src: `$a > 0`, want: true},
		{name: "number greater or equal", src: `$a >= 1`, want: true},
		{name: "number less", src: `$a < 1`, want: false},
		{name: "number less or equal", src: `$a <= 1`, want: true},
		{name: "string order", src: `'abc' < 'abd' and 'b' > 'abc' and 'Z' < 'a'`, want: true},
		{name: "string order by code point", src: `'é' > 'z'`, want: true},
		{name: "string vs number", src: `'abc' > 1`, wantErr: "'>' not supported between string and number"},
		{name: "null ordering", src: `$nope >= 1`, wantErr: "'>=' not supported between null and number"},
		{name: "bool ordering", src: `$c < true`, wantErr: "'<' not supported between boolean and boolean"},
		{name: "list ordering", src: `$list <= $list`, wantErr: "'<=' not supported between list and list"},
		// in, not in, contains.
		{name: "substring", src: `'refund' in $intent`, want: true},
		{name: "substring yes in decision", src: `'yes' in $decision`, want: true},
		{name: "substring absent", src: `'cancel' in $intent`, want: false},
		{name: "not in string", src: `'cancel' not in $intent`, want: true},
		{name: "list membership", src: `1 in $list and 'two' in $list and null in $list`, want: true},
		{name: "list membership numeric", src: `1.0 in $list`, want: true},
		{name: "list membership by type", src: `'1' in $list`, want: false},
		{name: "list membership deep", src: `$obj.n in $list`, want: false},
		{name: "list not in", src: `3 not in $list`, want: true},
		{name: "list contains", src: `$list contains 'two'`, want: true},
		{name: "list contains number", src: `$list contains 1`, want: true},
		{name: "list contains absent", src: `$list contains 3`, want: false},
		{name: "object key membership", src: `'k' in $obj`, want: true},
		{name: "object contains key", src: `$obj contains 'k'`, want: true},
		{name: "object does not contain value", src: `$obj contains 'v'`, want: false},
		{name: "string contains", src: `$intent contains "refund"`, want: true},
		{name: "contains is not reversed", src: `"refund" contains $intent`, want: false},
		{name: "in empty list", src: `1 in $empty_list`, want: false},
		{name: "in null", src: `'x' in $nope`, wantErr: "'in' needs a string, list or object on the right, got null"},
		{name: "not in null", src: `'x' not in $nope`, wantErr: "'not in' needs a string, list or object on the right, got null"},
		{name: "null contains", src: `$nope contains 'x'`, wantErr: "'contains' needs a string, list or object on the left, got null"},
		{name: "in number", src: `1 in $a`, wantErr: "'in' needs a string, list or object on the right, got number"},
		{name: "number in string", src: `1 in $s`, wantErr: "'in' with a string on the right needs a string on the left, got number"},
		{name: "string contains number", src: `$s contains 1`, wantErr: "'contains' with a string on the left needs a string on the right, got number"},
		{name: "number key in object", src: `1 in $obj`, wantErr: "'in' with an object on the right needs a string key on the left, got number"},
		// Truthiness.
		{name: "truthy number", src: `$a`, want: true},
		{name: "falsy zero", src: `$b`, want: false},
		{name: "falsy false", src: `$f`, want: false},
		{name: "falsy empty string", src: `$e`, want: false},
		{name: "truthy string", src: `$s`, want: true},
		{name: "falsy empty list", src: `$empty_list`, want: false},
		{name: "truthy list", src: `$list`, want: true},
		{name: "falsy empty object", src: `$empty_obj`, want: false},
		{name: "truthy object", src: `$obj`, want: true},
		{name: "falsy null literal", src: `None`, want: false},
		{name: "truthy literal", src: `'x'`, want: true},
		{name: "falsy zero literal", src: `0`, want: false},
		{name: "parenthesised comparison is a boolean", src: `($a == 1) == true`, want: true},
		{name: "and yields boolean", src: `($s and $a) == true`, want: true},
		{name: "or yields boolean", src: `($b or $s) == true`, want: true},
		{name: "not yields boolean", src: `(not $b) == true`, want: true},
		// Precedence and grouping.
		{name: "not binds looser than comparison", src: `not $decision == 'no'`, want: true},
		{name: "not over equality false", src: `not $decision == 'yes'`, want: false},
		{name: "and binds tighter than or", src: `$c or $f and $f`, want: true},
		{name: "and binds tighter than or, left", src: `$f and $f or $c`, want: true},
		{name: "or then and", src: `$f or $c and $f`, want: false},
		{name: "not of group", src: `not ($f or $c)`, want: false},
		{name: "not of group true", src: `not ($f or $b)`, want: true},
		{name: "not binds tighter than and", src: `not $f and $c`, want: true},
		{name: "not binds tighter than or", src: `not $c or $c`, want: true},
		{name: "and not", src: `$c and not $f`, want: true},
		{name: "double not", src: `not not $c`, want: true},
		{name: "triple not", src: `not not not $c`, want: false},
		{name: "not in binds as one operator", src: `not 'x' not in $s`, want: false},
		{name: "brief example", src: `($a > 3 and not $b) or $s contains "ell"`, want: true},
		{name: "long or chain", src: `$f or $b or $e or $n or $a`, want: true},
		{name: "long and chain", src: `$c and $a and $s and $f`, want: false},
		// Short-circuit: the right side would be a type error.
		{name: "and short-circuits", src: `$f and 'abc' > 1`, want: false},
		{name: "or short-circuits", src: `$c or 'abc' > 1`, want: true},
		{name: "and does not short-circuit on true", src: `$c and 'abc' > 1`, wantErr: "'>' not supported between string and number"},
		// Paths.
		{name: "hyphen in path", src: `$x-y == 'hyphen'`, want: true},
		{name: "underscore path", src: `$_u == 7`, want: true},
		{name: "unicode path", src: `$résumé == 'ok'`, want: true},
		{name: "dollar in string is literal", src: `'$decision' == 'yes'`, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			got, err := e.Eval(lookup)
			if tt.wantErr != "" {
				var ee *EvalError
				if !errors.As(err, &ee) || ee.Msg != tt.wantErr {
					t.Fatalf("Eval(%q) error = %v, want EvalError %q", tt.src, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("Eval(%q) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

// TestSyntaxErrors ensures every malformed condition is rejected with the
// column of its first problem and a message saying what is wrong.
func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		col  int
		msg  string // exact message
	}{
		{name: "empty", src: ``, col: 1, msg: "empty condition"},
		{name: "whitespace only", src: " \t\n ", col: 1, msg: "empty condition"},
		{name: "hash", src: `$a == #`, col: 7, msg: "unexpected character '#'"},
		{name: "semicolon", src: `$a; $b`, col: 3, msg: "unexpected character ';'"},
		{name: "backtick", src: "$a == `x`", col: 7, msg: "unexpected character '`'"},
		{name: "open bracket", src: `$a[0] == 1`, col: 3, msg: "unexpected character '['; indexing is not allowed, use $a.b"},
		{name: "plus", src: `$a + 1 == 2`, col: 4, msg: "unexpected character '+'; arithmetic is not allowed"},
		{name: "minus before variable", src: `-$a == 1`, col: 1, msg: "unexpected character '-'; arithmetic is not allowed"},
		{name: "star", src: `$a * 2`, col: 4, msg: "unexpected character '*'; arithmetic is not allowed"},
		{name: "single equals", src: `$a = 1`, col: 4, msg: "unexpected character '='; use '==' to compare"},
		{name: "bang", src: `!$a`, col: 1, msg: "unexpected character '!'; use 'not', or '!=' to compare"},
		{name: "double ampersand", src: `$a && $b`, col: 4, msg: "unexpected character '&'; use 'and'"},
		{name: "double pipe", src: `$a || $b`, col: 4, msg: "unexpected character '|'; use 'or'"},
		{name: "unicode punctuation", src: `$a == “x”`, col: 7, msg: "unexpected character '“'"},
		{name: "column counts runes", src: `'ééé' == §`, col: 10, msg: "unexpected character '§'"},
		{name: "non-breaking space", src: "$a\u00a0== 1", col: 3, msg: "unexpected character U+00A0"},
		{name: "control character", src: "$a\x00== 1", col: 3, msg: "unexpected character U+0000"},
		{name: "invalid utf-8", src: "$a == \xff", col: 7, msg: "unexpected byte 0xff (not UTF-8)"},
		{name: "dot alone", src: `$a == .5`, col: 7, msg: "unexpected character '.'"},
		{name: "unterminated single", src: `$a == 'yes`, col: 7, msg: "unterminated string"},
		{name: "unterminated double", src: `"yes`, col: 1, msg: "unterminated string"},
		{name: "unterminated after escape", src: `'yes\`, col: 1, msg: "unterminated string"},
		{name: "escaped quote does not close", src: `'yes\'`, col: 1, msg: "unterminated string"},
		{name: "unknown escape", src: `'a\qb' == $x`, col: 3, msg: `unknown escape '\q' in string; use \\ \' \" \n or \t`},
		{name: "dollar alone", src: `$ == 1`, col: 2, msg: "expected a variable name after '$'"},
		{name: "path starts with digit", src: `$1a == 1`, col: 2, msg: "expected a variable name after '$'"},
		{name: "trailing dot", src: `$a. == 1`, col: 4, msg: "expected a path segment after '.'"},
		{name: "double dot", src: `$a..b == 1`, col: 4, msg: "expected a path segment after '.'"},
		{name: "number runs into word", src: `3abc == 1`, col: 2, msg: "unexpected character 'a' after number"},
		{name: "two decimal points", src: `1.2.3 == 1`, col: 4, msg: "unexpected character '.' after number"},
		{name: "dangling exponent", src: `1e == 1`, col: 2, msg: "unexpected character 'e' after number"},
		{name: "number out of range", src: `$a > 1e999`, col: 6, msg: "number 1e999 out of range"},
		{name: "bare word", src: `$decision == yes`, col: 14, msg: "unknown word 'yes'; quote strings and prefix variables with '$'"},
		{name: "uppercase operator", src: `$a AND $b`, col: 4, msg: "unknown word 'AND'; write and"},
		{name: "uppercase not in", src: `$a NOT IN $b`, col: 4, msg: "unknown word 'NOT'; write not"},
		{name: "uppercase constant", src: `$a == NULL`, col: 7, msg: "unknown word 'NULL'; write None or null"},
		{name: "lowercase none", src: `$a == none`, col: 7, msg: "unknown word 'none'; write None or null"},
		{name: "capitalised operator as operand", src: `Not $a`, col: 1, msg: "unknown word 'Not'; write not"},
		{name: "method call", src: `$x.method()`, col: 10, msg: "calls are not allowed"},
		{name: "method call with argument", src: `$x.method('a') == 1`, col: 10, msg: "calls are not allowed"},
		{name: "function call", src: `len($x) > 1`, col: 4, msg: "calls are not allowed"},
		{name: "call with space", src: `$x.upper ()`, col: 10, msg: "calls are not allowed"},
		{name: "call on group", src: `($x)(1)`, col: 5, msg: "calls are not allowed"},
		{name: "chained less than", src: `1 < $a < 3`, col: 8, msg: "comparisons cannot be chained; join them with 'and', as in '1 < $a and $a < 3'"},
		{name: "chained equality", src: `$a == $b == $c`, col: 10, msg: "comparisons cannot be chained; join them with 'and', as in '1 < $a and $a < 3'"},
		{name: "chained not in", src: `$a in $b not in $c`, col: 10, msg: "comparisons cannot be chained; join them with 'and', as in '1 < $a and $a < 3'"},
		{name: "not without in", src: `$a not $b`, col: 8, msg: "expected 'in' after 'not', got '$b'"},
		{name: "missing right operand", src: `$a ==`, col: 6, msg: "expected a value, got end of condition"},
		{name: "missing left operand", src: `== $a`, col: 1, msg: "expected a value, got '=='"},
		{name: "dangling and", src: `$a and`, col: 7, msg: "expected a value, got end of condition"},
		{name: "dangling not", src: `$a and not`, col: 11, msg: "expected a value, got end of condition"},
		{name: "two operands", src: `$a $b`, col: 4, msg: "expected an operator, got '$b'"},
		{name: "unclosed paren", src: `($a or $b`, col: 10, msg: "expected ')' to close '(' at column 1, got end of condition"},
		{name: "unmatched paren", src: `$a)`, col: 3, msg: "unmatched ')'"},
		{name: "empty parens", src: `()`, col: 2, msg: "expected a value, got ')'"},
		{name: "not as comparison operand", src: `$a == not $b`, col: 7, msg: "expected a value, got 'not'"},
		{name: "first problem wins over later bad character", src: `$a == == #`, col: 7, msg: "expected a value, got '=='"},
		{name: "bad character before later problem", src: `$a # ==`, col: 4, msg: "unexpected character '#'"},
		{name: "too long", src: `'` + strings.Repeat("x", MaxLength) + `'`, col: 1, msg: "condition longer than 65536 bytes"},
		{name: "parens too deep", src: strings.Repeat("(", MaxDepth+1) + "$a" + strings.Repeat(")", MaxDepth+1), col: MaxDepth + 1, msg: "nesting too deep (limit 256)"},
		{name: "nots too deep", src: strings.Repeat("not ", MaxDepth+1) + "$a", col: 4*MaxDepth + 1, msg: "nesting too deep (limit 256)"},
		{name: "mixed nesting too deep", src: strings.Repeat("not (", MaxDepth/2) + "not $a" + strings.Repeat(")", MaxDepth/2), col: 5*(MaxDepth/2) + 1, msg: "nesting too deep (limit 256)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, %v; want a *SyntaxError", tt.src, e, err)
			}
			if se.Column != tt.col || se.Msg != tt.msg {
				t.Errorf("Parse(%q) error = column %d %q, want column %d %q", tt.src, se.Column, se.Msg, tt.col, tt.msg)
			}
			if want := fmt.Sprintf("column %d: %s", tt.col, tt.msg); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

// TestLimitsAccepted ensures inputs just inside the length and depth caps parse.
func TestLimitsAccepted(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{name: "max length", src: `'` + strings.Repeat("x", MaxLength-2) + `'`},
		{name: "max paren depth", src: strings.Repeat("(", MaxDepth) + "$a" + strings.Repeat(")", MaxDepth)},
		{name: "max not depth", src: strings.Repeat("not ", MaxDepth) + "$a"},
		{name: "wide or chain is not deep", src: "$a" + strings.Repeat(" or $a", 5000)},
		{name: "repeated groups are not deep", src: strings.Repeat("($a) and ", 3000) + "$a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := e.Eval(lookupIn(mustContext(t))); err != nil {
				t.Fatalf("Eval: %v", err)
			}
		})
	}
}

// TestVars ensures Vars lists each referenced path once, in order of first
// appearance, and returns copies.
func TestVars(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want [][]string
	}{
		{name: "none", src: `'ok' == 'ok'`, want: [][]string{}},
		{name: "one nested", src: `$poll_result.payment_status == 'SUCCESS'`, want: [][]string{{"poll_result", "payment_status"}}},
		{name: "order and dedup", src: `$b or ($a.x and not $b) or $a or $a.x contains $c`, want: [][]string{{"b"}, {"a", "x"}, {"a"}, {"c"}}},
		{name: "inside strings is not a var", src: `'$x' in $y`, want: [][]string{{"y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := e.Vars()
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("Vars() = %q, want %q", got, tt.want)
			}
			if len(got) > 0 {
				got[0][0] = "mutated"
				if e.Vars()[0][0] == "mutated" {
					t.Fatal("Vars() exposes internal slices")
				}
			}
		})
	}
}

// TestString ensures String returns the exact source text.
func TestString(t *testing.T) {
	for _, src := range []string{`$a`, "  $a ==\t'x'  ", `not ($a or $b)`} {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if e.String() != src {
			t.Errorf("String() = %q, want %q", e.String(), src)
		}
	}
}

// TestGoValueTypes ensures numbers of every Go numeric type and json.Number
// compare numerically, and that non-JSON values are an EvalError.
func TestGoValueTypes(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	cyclicObj := map[string]any{}
	cyclicObj["self"] = cyclicObj
	deep := any("bottom")
	for range maxValueDepth + 5 {
		deep = []any{deep}
	}
	deep2 := any("bottom")
	for range maxValueDepth + 5 {
		deep2 = []any{deep2}
	}
	tests := []struct {
		name    string
		src     string
		v       any
		w       any
		want    bool
		wantErr string
	}{
		{name: "int", src: `$v == 3`, v: 3, want: true},
		{name: "int64", src: `$v > 2.5`, v: int64(3), want: true},
		{name: "int32", src: `$v == 3`, v: int32(3), want: true},
		{name: "uint64", src: `$v == 3`, v: uint64(3), want: true},
		{name: "uint8", src: `$v == 3`, v: uint8(3), want: true},
		{name: "float32", src: `$v == 0.5`, v: float32(0.5), want: true},
		{name: "json.Number", src: `$v == 3`, v: json.Number("3.0"), want: true},
		{name: "json.Number ordering", src: `$v < 1e3`, v: json.Number("12"), want: true},
		{name: "bad json.Number", src: `$v == 3`, v: json.Number("x"), wantErr: `$v: invalid json.Number "x"`},
		{name: "mixed numeric types in lists", src: `$v == $w`, v: []any{1, int64(2), json.Number("3")}, w: []any{1.0, 2.0, 3.0}, want: true},
		{name: "int in list", src: `2 in $v`, v: []any{int64(1), 2}, want: true},
		{name: "nil list is empty", src: `$v`, v: []any(nil), want: false},
		{name: "nil map is empty", src: `$v == $w`, v: map[string]any(nil), w: map[string]any{}, want: true},
		{name: "unsupported type", src: `$v == 1`, v: struct{}{}, wantErr: "$v: unsupported value type struct {}; conditions compare JSON data only"},
		{name: "unsupported typed slice", src: `$v`, v: []string{"a"}, wantErr: "$v: unsupported value type []string; conditions compare JSON data only"},
		{name: "unsupported element", src: `$v == $w`, v: []any{1, struct{}{}}, w: []any{1, 2}, wantErr: "unsupported value type struct {}; conditions compare JSON data only"},
		{name: "unsupported element in membership", src: `3 in $v`, v: []any{1, uint16(3)}, want: true},
		{name: "unsupported object value found in key order", src: `$v == $w`, v: map[string]any{"a": struct{}{}, "b": 1, "c": 1}, w: map[string]any{"a": 1, "b": 2, "c": 3}, wantErr: "unsupported value type struct {}; conditions compare JSON data only"},
		{name: "cyclic list equals itself", src: `$v == $v`, v: cyclic, want: true},
		{name: "cyclic object equals itself", src: `$v == $v`, v: cyclicObj, want: true},
		{name: "deep distinct values hit the depth cap", src: `$v == $w`, v: deep, w: deep2, wantErr: "values nested deeper than 10000 levels"},
		{name: "NaN is unequal and unordered", src: `$v != $v and not $v < 1 and not $v >= 1`, v: nanValue(), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(func(p []string) (any, bool) {
				switch p[0] {
				case "v":
					return tt.v, true
				case "w":
					return tt.w, true
				}
				return nil, false
			})
			if tt.wantErr != "" {
				var ee *EvalError
				if !errors.As(err, &ee) || ee.Msg != tt.wantErr {
					t.Fatalf("error = %v, want EvalError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Eval = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// TestNilLookupAndZeroExpr ensures a nil lookup treats variables as missing
// and an Expr not made by Parse fails cleanly instead of panicking.
func TestNilLookupAndZeroExpr(t *testing.T) {
	e, err := Parse(`$a == null and not $b`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Eval(nil); err != nil || !got {
		t.Fatalf("Eval(nil) = %v, %v; want true", got, err)
	}
	var ee *EvalError
	if _, err := new(Expr).Eval(nil); !errors.As(err, &ee) {
		t.Fatalf("zero Expr Eval error = %v, want *EvalError", err)
	}
	var nilExpr *Expr
	if _, err := nilExpr.Eval(nil); !errors.As(err, &ee) {
		t.Fatalf("nil Expr Eval error = %v, want *EvalError", err)
	}
	if nilExpr.String() != "" || nilExpr.Vars() != nil {
		t.Fatal("nil Expr String/Vars not empty")
	}
}

// TestConcurrentEval ensures one Expr can be evaluated from many goroutines
// at once (run with -race).
func TestConcurrentEval(t *testing.T) {
	e, err := Parse(`($a > 0 and 'refund' in $intent) or $obj == $obj2`)
	if err != nil {
		t.Fatal(err)
	}
	lookup := lookupIn(mustContext(t))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if got, err := e.Eval(lookup); err != nil || !got {
					t.Errorf("Eval = %v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzParseEval ensures Parse and Eval never panic, Parse reports errors as
// *SyntaxError at a column inside the source, Eval reports errors as
// *EvalError, and the AST survives a round trip through source text.
func FuzzParseEval(f *testing.F) {
	for _, s := range []string{
		`$decision == "yes"`, `$a > 3 and not $b`, `'x' not in $list`, `$obj contains 'k'`,
	} {
		f.Add(s)
	}
	ctx := mustContext(f)
	lookup := lookupIn(ctx)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not *SyntaxError", src, err)
			}
			if max := utf8.RuneCountInString(src) + 1; se.Column < 1 || se.Column > max {
				t.Fatalf("Parse(%q) error column %d outside 1..%d", src, se.Column, max)
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want %q", e.String(), src)
		}
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("Parse(String()) of %q: %v", src, err)
		}
		got, evalErr := e.Eval(lookup)
		if evalErr != nil {
			var ee *EvalError
			if !errors.As(evalErr, &ee) {
				t.Fatalf("Eval(%q) error %T is not *EvalError", src, evalErr)
			}
		}
		got2, evalErr2 := again.Eval(lookup)
		if got != got2 || fmt.Sprint(evalErr) != fmt.Sprint(evalErr2) {
			t.Fatalf("Eval not deterministic for %q", src)
		}
		c := canonical(e)
		ce, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, src, err)
		}
		if c2 := canonical(ce); c2 != c {
			t.Fatalf("canonical form unstable for %q: %q then %q", src, c, c2)
		}
		if !slices.EqualFunc(ce.Vars(), e.Vars(), slices.Equal) {
			t.Fatalf("canonical form %q changed Vars of %q", c, src)
		}
		got3, evalErr3 := ce.Eval(lookup)
		if got3 != got || fmt.Sprint(evalErr3) != fmt.Sprint(evalErr) {
			t.Fatalf("canonical form %q evaluates to %v, %v; source %q to %v, %v", c, got3, evalErr3, src, got, evalErr)
		}
	})
}

// BenchmarkEval measures evaluation on the hot path.
func BenchmarkEval(b *testing.B) {
	ctx := map[string]any{
		"a":      map[string]any{"b": "x"},
		"n":      7.0,
		"intent": "customer asks for a refund",
		"list":   []any{1.0, "two", 3.0},
	}
	lookup := lookupIn(ctx)
	for _, bc := range []struct{ name, src string }{
		{name: "eq_and_gt", src: `$a.b == 'x' and $n > 3`},
		{name: "substring", src: `'refund' in $intent`},
		{name: "list_contains", src: `$list contains 3`},
		{name: "precedence", src: `not ($n < 3 or $a.b != 'x') and ($intent contains 'refund' or $missing)`},
	} {
		e, err := Parse(bc.src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := e.Eval(lookup); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkParse measures compiling a condition at program validation.
func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(`($a.b == 'x' and $n > 3) or 'refund' in $intent`); err != nil {
			b.Fatal(err)
		}
	}
}
