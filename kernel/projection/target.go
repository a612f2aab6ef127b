package projection

import (
	"errors"
	"fmt"
	"strings"
)

// Target names an audience of a projection. The zero value is invalid, so a
// forgotten target fails closed (Project returns nil) instead of leaking.
type Target int

const (
	// LLM is what a prompt may see: no governance metadata, secrets and
	// personal data redacted.
	LLM Target = iota + 1
	// Trace is what traces and audit envelopes store: vault references
	// replaced by their public form.
	Trace
	// Tool is what a tool may see of state beyond its arguments: only the
	// granted keys, vault references kept unless erased.
	Tool
)

// String returns "LLM", "TRACE" or "TOOL", the names the MCP surface uses, or
// "Target(n)" for an invalid value.
func (t Target) String() string {
	switch t {
	case LLM:
		return "LLM"
	case Trace:
		return "TRACE"
	case Tool:
		return "TOOL"
	}
	return fmt.Sprintf("Target(%d)", int(t))
}

// ParseTarget returns the Target whose String is s, ignoring case.
func ParseTarget(s string) (Target, error) {
	for _, t := range []Target{LLM, Trace, Tool} {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("parse projection target %q: %w", s, ErrTarget)
}

// ErrTarget is returned by ParseTarget when a name is not LLM, TRACE or TOOL.
var ErrTarget = errors.New("unknown projection target")
