// Package condition implements the expression language of condition steps:
// a small, safe, deterministic language that compares JSON data reached
// through $path variables, such as
//
//	$decision == "yes"
//	$poll_result.payment_status == 'SUCCESS'
//	'refund' in $intent
//	($a > 3 and not $b) or $c contains "x"
//
// Parse compiles a condition once, when a program is validated; Expr.Eval
// evaluates it on the hot path against a lookup function.
//
// # Language
//
// Operands are $path variables ($name or $a.b.c), string literals in single
// or double quotes with the escapes \\ \' \" \n \t, numbers (integer or
// decimal, optional leading '-', optional exponent), True/False/None and
// true/false/null. Operators, lowest precedence first, as in Python:
//
//	or
//	and
//	not
//	== != > >= < <= in, not in, contains   (non-associative)
//
// so `not $a == 'x'` means `not ($a == 'x')`. Parentheses group. A lone
// operand is judged by Python's truthiness; and, or and not short-circuit and
// yield booleans. `a contains b` is exactly `b in a`.
//
// # Invariants
//
//   - There are no calls, no indexing, no arithmetic and no attribute access
//     except through a $path into JSON data. A character the lexer does not
//     know is a *SyntaxError naming its column; nothing is silently dropped.
//   - Parse rejects sources longer than MaxLength bytes and nesting deeper
//     than MaxDepth, so neither parsing nor evaluation recurses without bound.
//   - Eval never panics, whatever the expression and whatever JSON data the
//     lookup returns; type errors are *EvalError values.
//   - Evaluation is deterministic: the same expression and the same data give
//     the same result and the same error text.
//
// # Caveats
//
//   - Numbers compare as float64, so integers beyond 2^53 may compare equal
//     to their neighbours.
//   - A string literal is always literal: '$x' is the two characters $ and x,
//     not the variable (the original taught `'yes' in '$decision'`; write
//     `'yes' in $decision`).
package condition
