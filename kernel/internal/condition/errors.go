package condition

import "fmt"

// SyntaxError is returned by Parse when the source is not a valid condition.
type SyntaxError struct {
	// Column is the 1-based position of the offending character or token,
	// counted in runes (an invalid UTF-8 byte counts as one). A problem at
	// the end of the source has the column just past the last rune.
	Column int
	// Msg says what is wrong, e.g. "unexpected character '#'".
	Msg string
}

// Error returns "column N: msg".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("column %d: %s", e.Column, e.Msg)
}

// EvalError is returned by Expr.Eval when the data does not fit the
// expression, e.g. "'>' not supported between string and number". The
// caller (a condition step) fails the step with it.
type EvalError struct {
	// Msg says what is wrong.
	Msg string
}

// Error returns Msg.
func (e *EvalError) Error() string { return e.Msg }

func evalErrorf(format string, args ...any) *EvalError {
	return &EvalError{Msg: fmt.Sprintf(format, args...)}
}
