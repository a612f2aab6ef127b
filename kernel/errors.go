package kernel

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotValidated is returned when a program that did not pass Validate
	// is given to the machine.
	ErrNotValidated = errors.New("program not validated: load it with LoadProgram or call Validate")
	// ErrNotSuspended is returned when Resume is called on a run that is not
	// suspended, including a second resume of the same suspension.
	ErrNotSuspended = errors.New("run is not suspended")
	// ErrFinished is returned when Continue is called on a run that has
	// already reached a terminal status.
	ErrFinished = errors.New("run already finished")
	// ErrTraceMismatch is returned when a recorded trace cannot belong to
	// the program it is restored with.
	ErrTraceMismatch = errors.New("trace does not match program")
)

// Problem is one thing wrong with a program, naming the step and the field.
type Problem struct {
	// Step is the step id, or "#i" for a step with no usable id, or "" for a
	// problem with the program as a whole.
	Step string `json:"step,omitempty"`
	// Field is the JSON field at fault, when there is one.
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Step != "" {
		fmt.Fprintf(&b, "step %q", p.Step)
	} else {
		b.WriteString("program")
	}
	if p.Field != "" {
		fmt.Fprintf(&b, " field %q", p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError is returned by LoadProgram and Validate; it lists every
// problem found, so an author can fix them all at once.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid program: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid program: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}
