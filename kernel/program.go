package kernel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// StepType is the kind of a step. The zero value is invalid.
type StepType string

// The step types of a program.
const (
	StepTool      StepType = "tool"
	StepLLM       StepType = "llm"
	StepCondition StepType = "condition"
	StepParallel  StepType = "parallel"
)

func (t StepType) String() string { return string(t) }

func (t StepType) valid() bool {
	switch t {
	case StepTool, StepLLM, StepCondition, StepParallel:
		return true
	}
	return false
}

// ErrorPolicy says what a failed step does to the run. The zero value means
// OnErrorFail.
type ErrorPolicy string

// The error policies of a step.
const (
	OnErrorFail  ErrorPolicy = "fail"
	OnErrorSkip  ErrorPolicy = "skip"
	OnErrorRetry ErrorPolicy = "retry"
)

func (p ErrorPolicy) String() string {
	if p == "" {
		return string(OnErrorFail)
	}
	return string(p)
}

// DefaultMaxRetries is the number of attempts a step with on_error "retry"
// makes when it sets no max_retries, as in the original.
const DefaultMaxRetries = 3

// OnTimeoutFallback is the only on_timeout value: a timed-out step succeeds
// with allowed_outputs[0], or "" when it has none.
const OnTimeoutFallback = "fallback"

// Program is a program in the original nano-vm format. Build one with
// LoadProgram (or call Validate on a hand-made one) before running it: a
// program that has not been validated cannot run.
type Program struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
	Steps       []Step `json:"steps"`
	// MaxSteps caps the steps a run may execute; nil means no cap.
	MaxSteps *int `json:"max_steps,omitempty"`
	// MaxTokens caps the LLM tokens a run may consume; nil means no cap.
	MaxTokens *int `json:"max_tokens,omitempty"`
	// MaxStalledSteps ends the run STALLED after this many consecutive
	// steps that left the state unchanged; nil means no cap.
	MaxStalledSteps *int `json:"max_stalled_steps,omitempty"`

	compiled *compiled
	// stepCeiling is the server's cap on the steps of any run (CapSteps);
	// 0 means none.
	stepCeiling int
}

// CheckSteps refuses a program whose max_steps is above ceiling, the
// server's cap on the steps of any run, with a *ValidationError naming
// both. A ceiling of 0 or less means none.
func (p *Program) CheckSteps(ceiling int) error {
	if ceiling > 0 && p.MaxSteps != nil && *p.MaxSteps > ceiling {
		return &ValidationError{Problems: []Problem{{Field: "max_steps", Msg: fmt.Sprintf("%d is above the server's ceiling of %d steps per run", *p.MaxSteps, ceiling)}}}
	}
	return nil
}

// CapSteps makes every run of p stop with StatusBudgetExceeded after
// ceiling steps, whatever its own max_steps says (a program stored before
// the ceiling was lowered runs clamped). A ceiling of 0 or less means
// none. Call it before p is shared: it is not safe for concurrent use with
// a run of p.
func (p *Program) CapSteps(ceiling int) {
	p.stepCeiling = max(ceiling, 0)
}

// Step is one step of a program. Which fields apply depends on Type.
type Step struct {
	ID             string         `json:"id"`
	Type           StepType       `json:"type"`
	Prompt         string         `json:"prompt,omitempty"`
	System         string         `json:"system,omitempty"`
	OutputKey      string         `json:"output_key,omitempty"`
	Tool           string         `json:"tool,omitempty"`
	Args           map[string]any `json:"args,omitempty"`
	Condition      string         `json:"condition,omitempty"`
	Then           string         `json:"then,omitempty"`
	Otherwise      string         `json:"otherwise,omitempty"`
	ParallelSteps  []Step         `json:"parallel_steps,omitempty"`
	MaxConcurrency int            `json:"max_concurrency,omitempty"`
	OnError        ErrorPolicy    `json:"on_error,omitempty"`
	// MaxRetries is the total number of attempts under on_error "retry";
	// nil means DefaultMaxRetries.
	MaxRetries     *int     `json:"max_retries,omitempty"`
	IsTerminal     bool     `json:"is_terminal,omitempty"`
	NextStep       string   `json:"next_step,omitempty"`
	AllowedOutputs []string `json:"allowed_outputs,omitempty"`
	// TimeoutSeconds bounds one attempt of an llm or tool step; zero means
	// no kernel timeout (the tool host still applies its own default).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	OnTimeout      string  `json:"on_timeout,omitempty"`
}

// attempts is the number of attempts the step may make.
func (s *Step) attempts() int {
	if s.OnError != OnErrorRetry {
		return 1
	}
	if s.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *s.MaxRetries
}

// Warning is a problem in a program that does not stop it from running,
// such as a step no path reaches.
type Warning struct {
	Step string `json:"step,omitempty"`
	Msg  string `json:"message"`
}

func (w Warning) String() string {
	if w.Step == "" {
		return w.Msg
	}
	return fmt.Sprintf("step %q: %s", w.Step, w.Msg)
}

// LoadProgram decodes and validates a program from JSON. Unknown fields are
// errors naming the step and field. The returned error, if any, is a
// *ValidationError listing every problem found.
func LoadProgram(data []byte) (*Program, []Warning, error) {
	p, err := decodeProgram(data)
	if err != nil {
		return nil, nil, err
	}
	warns, err := p.Validate()
	if err != nil {
		return nil, nil, err
	}
	return p, warns, nil
}

// decodeProgram decodes strictly, step by step, so that an unknown field is
// reported with the step it sits in rather than as a bare field name.
func decodeProgram(data []byte) (*Program, error) {
	var head struct {
		Name            *string           `json:"name"`
		Description     string            `json:"description"`
		Version         *string           `json:"version"`
		Steps           []json.RawMessage `json:"steps"`
		MaxSteps        *int              `json:"max_steps"`
		MaxTokens       *int              `json:"max_tokens"`
		MaxStalledSteps *int              `json:"max_stalled_steps"`
	}
	if err := strictUnmarshal(data, &head); err != nil {
		return nil, &ValidationError{Problems: []Problem{{Field: fieldOf(err), Msg: "program: " + jsonMessage(err)}}}
	}
	p := &Program{
		Name: "unnamed", Description: head.Description, Version: "1.0",
		MaxSteps: head.MaxSteps, MaxTokens: head.MaxTokens, MaxStalledSteps: head.MaxStalledSteps,
	}
	if head.Name != nil {
		p.Name = *head.Name
	}
	if head.Version != nil {
		p.Version = *head.Version
	}
	var problems []Problem
	for i, raw := range head.Steps {
		s, err := decodeStep(raw)
		if err != nil {
			problems = append(problems, Problem{Step: stepLabel(raw, i), Field: fieldOf(err), Msg: jsonMessage(err)})
			continue
		}
		p.Steps = append(p.Steps, s)
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return p, nil
}

func decodeStep(raw json.RawMessage) (Step, error) {
	var s Step
	if err := strictUnmarshal(raw, &s); err != nil {
		return Step{}, err
	}
	// Sub-steps were decoded by encoding/json already, strictly; this
	// only re-labels their errors, which the decoder reported without a
	// step name.
	return s, nil
}

// stepLabel names a step that failed to decode, by id when it has one.
func stepLabel(raw json.RawMessage, i int) string {
	var probe struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if id, ok := probe.ID.(string); ok && id != "" {
			return id
		}
	}
	return fmt.Sprintf("#%d", i)
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// fieldOf extracts the offending field from an encoding/json error.
func fieldOf(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return te.Field
	}
	msg := err.Error()
	if i := strings.Index(msg, "unknown field "); i >= 0 {
		return strings.Trim(msg[i+len("unknown field "):], `"`)
	}
	return ""
}

func jsonMessage(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return msg + " (not part of the program format)"
	}
	return msg
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return kind
}

// StepByID returns the top-level step with the given id, or nil. The
// program must have been validated (LoadProgram does it).
func (p *Program) StepByID(id string) *Step {
	if p.compiled == nil {
		return nil
	}
	i, ok := p.compiled.index[id]
	if !ok {
		return nil
	}
	return &p.Steps[i]
}
