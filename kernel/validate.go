package kernel

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/nanovm/nano-vm-mcp/kernel/internal/condition"
)

// compiled is what validation learns about a program, kept for the run.
type compiled struct {
	index map[string]int
	conds map[string]*condition.Expr
	// subIndex maps a parallel step's id to its sub-steps' ids → position.
	subIndex map[string]map[string]int
	// calls holds, by parallel step id, each sub-step as it runs (with
	// its parent's error policy, effectiveSub) and its call id
	// ("parent/sub"), made once instead of at every run.
	calls map[string][]subCall
	// condAt and callsAt are conds and calls by step position.
	condAt  []*condition.Expr
	callsAt [][]subCall
	// openHeads are the $reference heads only an input key can define
	// (Program.RefWarnings), found once.
	openOnce  sync.Once
	openHeads []string
}

// subCall is one sub-step of a parallel step, ready to run.
type subCall struct {
	step   *Step
	callID string
}

// prepareCalls fills c.calls for p's parallel steps.
func (c *compiled) prepareCalls(p *Program) {
	c.calls = make(map[string][]subCall)
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Type != StepParallel {
			continue
		}
		calls := make([]subCall, len(s.ParallelSteps))
		for j := range s.ParallelSteps {
			sub := effectiveSub(s, &s.ParallelSteps[j])
			calls[j] = subCall{step: sub, callID: s.ID + "/" + sub.ID}
		}
		c.calls[s.ID] = calls
	}
	c.condAt = make([]*condition.Expr, len(p.Steps))
	c.callsAt = make([][]subCall, len(p.Steps))
	for i := range p.Steps {
		c.condAt[i] = c.conds[p.Steps[i].ID]
		c.callsAt[i] = c.calls[p.Steps[i].ID]
	}
}

// Validate checks the program and prepares it to run. It reports every
// problem as one *ValidationError, and the steps no path reaches as
// warnings. A program must be validated before it runs; Validate is
// idempotent.
func (p *Program) Validate() ([]Warning, error) {
	v := validator{p: p, c: &compiled{
		index:    make(map[string]int, len(p.Steps)),
		conds:    make(map[string]*condition.Expr),
		subIndex: make(map[string]map[string]int),
	}}
	v.run()
	if len(v.problems) > 0 {
		p.compiled = nil
		return nil, &ValidationError{Problems: v.problems}
	}
	v.c.prepareCalls(p)
	p.compiled = v.c
	return v.warnings(), nil
}

type validator struct {
	p        *Program
	c        *compiled
	problems []Problem
}

func (v *validator) addf(step, field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Step: step, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) run() {
	p := v.p
	if p.Name == "" {
		p.Name = "unnamed"
	}
	if p.Version == "" {
		p.Version = "1.0"
	}
	for _, b := range []struct {
		name string
		val  *int
	}{{"max_steps", p.MaxSteps}, {"max_tokens", p.MaxTokens}, {"max_stalled_steps", p.MaxStalledSteps}} {
		if b.val != nil && *b.val < 0 {
			v.addf("", b.name, "must not be negative, got %d", *b.val)
		}
	}
	if len(p.Steps) == 0 {
		v.addf("", "steps", "a program needs at least one step")
		return
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		label := s.ID
		if label == "" {
			label = fmt.Sprintf("#%d", i)
			v.addf(label, "id", "every step needs an id")
		} else if _, dup := v.c.index[s.ID]; dup {
			v.addf(label, "id", "duplicate step id (also step #%d)", v.c.index[s.ID])
		} else {
			v.c.index[s.ID] = i
		}
	}
	for i := range p.Steps {
		v.step(&p.Steps[i], i, "")
	}
	if len(v.problems) == 0 {
		v.cycles()
	}
}

// step checks one step; parent is the id of the parallel step it sits in,
// or "" for a top-level step.
func (v *validator) step(s *Step, i int, parent string) {
	label := s.ID
	if label == "" {
		label = fmt.Sprintf("#%d", i)
		if parent == "" {
			// Reported already.
		} else {
			v.addf(parent+"/"+label, "id", "every step needs an id")
		}
	}
	if parent != "" {
		label = parent + "/" + label
	}
	if s.Type == "" {
		v.addf(label, "type", "missing; one of tool, llm, condition, parallel")
		return
	}
	if !s.Type.valid() {
		v.addf(label, "type", "unknown step type %q; one of tool, llm, condition, parallel", string(s.Type))
		return
	}
	na := func(field string, set bool) {
		if set {
			v.addf(label, field, "does not apply to a %s step", s.Type)
		}
	}
	na("prompt", s.Type != StepLLM && s.Prompt != "")
	na("system", s.Type != StepLLM && s.System != "")
	na("allowed_outputs", s.Type != StepLLM && s.AllowedOutputs != nil)
	na("tool", s.Type != StepTool && s.Tool != "")
	na("args", s.Type != StepTool && s.Args != nil)
	na("condition", s.Type != StepCondition && s.Condition != "")
	na("then", s.Type != StepCondition && s.Then != "")
	na("otherwise", s.Type != StepCondition && s.Otherwise != "")
	na("parallel_steps", s.Type != StepParallel && s.ParallelSteps != nil)
	na("max_concurrency", s.Type != StepParallel && s.MaxConcurrency != 0)
	na("output_key", s.Type == StepCondition && s.OutputKey != "")
	na("timeout_seconds", (s.Type == StepCondition || s.Type == StepParallel) && s.TimeoutSeconds != 0)
	na("on_timeout", (s.Type == StepCondition || s.Type == StepParallel) && s.OnTimeout != "")

	switch s.Type {
	case StepTool:
		if strings.TrimSpace(s.Tool) == "" {
			v.addf(label, "tool", "a tool step needs the name of the tool to call")
		}
	case StepLLM:
		if strings.TrimSpace(s.Prompt) == "" {
			v.addf(label, "prompt", "an llm step needs a prompt")
		}
		if s.AllowedOutputs != nil && len(s.AllowedOutputs) == 0 {
			v.addf(label, "allowed_outputs", "must list at least one output when present")
		}
	case StepCondition:
		if parent != "" {
			v.addf(label, "type", "a parallel step may only hold llm and tool steps")
			return
		}
		if strings.TrimSpace(s.Condition) == "" {
			v.addf(label, "condition", "a condition step needs an expression")
		} else if e, err := condition.Parse(s.Condition); err != nil {
			v.addf(label, "condition", "%v", err)
		} else {
			v.c.conds[s.ID] = e
		}
		if s.Then == "" && s.Otherwise == "" {
			v.addf(label, "then", "a condition step needs then, otherwise or both")
		}
	case StepParallel:
		if parent != "" {
			v.addf(label, "type", "a parallel step may only hold llm and tool steps")
			return
		}
		if len(s.ParallelSteps) == 0 {
			v.addf(label, "parallel_steps", "a parallel step needs at least one sub-step")
		}
		if s.MaxConcurrency < 0 {
			v.addf(label, "max_concurrency", "must not be negative, got %d", s.MaxConcurrency)
		}
		subs := make(map[string]int, len(s.ParallelSteps))
		for j := range s.ParallelSteps {
			sub := &s.ParallelSteps[j]
			if sub.ID != "" {
				if _, dup := subs[sub.ID]; dup {
					v.addf(label+"/"+sub.ID, "id", "duplicate sub-step id")
				}
				subs[sub.ID] = j
			}
			if sub.Type != StepTool && sub.Type != StepLLM && sub.Type.valid() {
				v.addf(label+"/"+sub.ID, "type", "a parallel step may only hold llm and tool steps, not %s", sub.Type)
				continue
			}
			if sub.NextStep != "" {
				v.addf(label+"/"+sub.ID, "next_step", "does not apply to a sub-step of a parallel step")
			}
			if sub.IsTerminal {
				v.addf(label+"/"+sub.ID, "is_terminal", "does not apply to a sub-step of a parallel step")
			}
			v.step(sub, j, s.ID)
		}
		v.c.subIndex[s.ID] = subs
	}

	switch s.OnError {
	case "", OnErrorFail, OnErrorSkip, OnErrorRetry:
	default:
		v.addf(label, "on_error", "unknown policy %q; one of fail, skip, retry", string(s.OnError))
	}
	if s.MaxRetries != nil {
		if *s.MaxRetries < 1 {
			v.addf(label, "max_retries", "counts attempts and must be at least 1, got %d", *s.MaxRetries)
		}
	}
	if s.TimeoutSeconds < 0 || math.IsNaN(s.TimeoutSeconds) || math.IsInf(s.TimeoutSeconds, 0) {
		v.addf(label, "timeout_seconds", "must be a positive number of seconds")
	}
	if s.OnTimeout != "" && s.OnTimeout != OnTimeoutFallback {
		v.addf(label, "on_timeout", "unknown value %q; the only one is %q", s.OnTimeout, OnTimeoutFallback)
	}
	if s.OnTimeout != "" && s.TimeoutSeconds == 0 {
		v.addf(label, "on_timeout", "needs timeout_seconds")
	}
	if strings.HasPrefix(s.OutputKey, "__") {
		v.addf(label, "output_key", "keys starting with __ are reserved for the runtime")
	}
	if parent == "" {
		for _, t := range []struct{ field, target string }{{"then", s.Then}, {"otherwise", s.Otherwise}, {"next_step", s.NextStep}} {
			if t.target == "" {
				continue
			}
			if _, ok := v.c.index[t.target]; !ok {
				v.addf(label, t.field, "no step has id %q", t.target)
			}
		}
	}
}

// successors lists the steps that may follow step i.
func (c *compiled) successors(p *Program, i int) []int {
	s := &p.Steps[i]
	var out []int
	if s.Type == StepCondition {
		for _, t := range []string{s.Then, s.Otherwise} {
			if t != "" {
				out = append(out, c.index[t])
			}
		}
		if s.Then != "" && s.Otherwise != "" {
			return out
		}
	}
	if n, ok := c.fallthroughOf(p, i); ok {
		out = append(out, n)
	}
	return out
}

// fallthroughOf is the transition after step i when no branch applies:
// next_step, else nothing when terminal, else the next step in array order.
func (c *compiled) fallthroughOf(p *Program, i int) (int, bool) {
	s := &p.Steps[i]
	if s.NextStep != "" {
		return c.index[s.NextStep], true
	}
	if s.IsTerminal || i+1 >= len(p.Steps) {
		return 0, false
	}
	return i + 1, true
}

// cycles rejects a loop in the step graph unless max_steps bounds the run.
func (v *validator) cycles() {
	if v.p.MaxSteps != nil {
		return
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(v.p.Steps))
	var stack []int
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, n := range v.c.successors(v.p, i) {
			switch color[n] {
			case grey:
				var path []string
				for k := len(stack) - 1; k >= 0; k-- {
					path = append([]string{v.p.Steps[stack[k]].ID}, path...)
					if stack[k] == n {
						break
					}
				}
				path = append(path, v.p.Steps[n].ID)
				v.addf(v.p.Steps[i].ID, "", "cycle %s has no bound: set max_steps on the program", strings.Join(path, " → "))
				return true
			case white:
				if visit(n) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	for i := range v.p.Steps {
		if color[i] == white && visit(i) {
			return
		}
	}
}

func (v *validator) warnings() []Warning {
	seen := make([]bool, len(v.p.Steps))
	queue := []int{0}
	seen[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, n := range v.c.successors(v.p, i) {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	var out []Warning
	for i, ok := range seen {
		if !ok {
			out = append(out, Warning{Step: v.p.Steps[i].ID, Msg: "unreachable: no path from the first step leads here"})
		}
	}
	for i := range v.p.Steps {
		s := &v.p.Steps[i]
		if s.Type == StepCondition && quotedRef(s.Condition) {
			out = append(out, Warning{Step: s.ID, Msg: "a quoted '$name' is a literal string, not a variable; write $name without quotes"})
		}
		if s.MaxRetries != nil && s.OnError != OnErrorRetry {
			out = append(out, Warning{Step: s.ID, Msg: "max_retries has no effect unless on_error is \"retry\""})
		}
	}
	return out
}

// quotedRef reports whether a condition holds a string literal that starts
// like a reference ('$decision'), which the original's docs taught but which
// is a literal.
func quotedRef(src string) bool {
	for i := 0; i+2 < len(src); i++ {
		if (src[i] == '\'' || src[i] == '"') && src[i+1] == '$' && isRefStart(src[i+2]) {
			return true
		}
	}
	return false
}
