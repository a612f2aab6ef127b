package kernel

import (
	"encoding/json"
	"slices"
	"time"
)

// Status is the status of a run. The zero value is invalid.
type Status string

// The statuses of a run. Success, Failed, BudgetExceeded and Stalled are
// terminal; a Suspended run waits for Resume; a Running run that is not in
// memory was interrupted and may be continued.
const (
	StatusRunning        Status = "running"
	StatusSuccess        Status = "success"
	StatusFailed         Status = "failed"
	StatusBudgetExceeded Status = "budget_exceeded"
	StatusStalled        Status = "stalled"
	StatusSuspended      Status = "suspended"
)

// Statuses lists every run status, in the order schemas and help texts
// show them. It is the one list: the store, the MCP schemas' enums and the
// CLI derive theirs from it.
func Statuses() []Status {
	return []Status{StatusRunning, StatusSuccess, StatusFailed, StatusBudgetExceeded, StatusStalled, StatusSuspended}
}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses(), s) }

func (s Status) String() string { return string(s) }

// Terminal reports whether no further step can run.
func (s Status) Terminal() bool {
	switch s {
	case StatusSuccess, StatusFailed, StatusBudgetExceeded, StatusStalled:
		return true
	}
	return false
}

// StepStatus is the status of one step record. The zero value is invalid.
type StepStatus string

// The statuses of a step record. A step that suspended the run is Pending.
const (
	StepPending StepStatus = "pending"
	StepRunning StepStatus = "running"
	StepSuccess StepStatus = "success"
	StepFailed  StepStatus = "failed"
	StepSkipped StepStatus = "skipped"
)

// StepStatuses lists every step status, in the order schemas show them.
func StepStatuses() []StepStatus {
	return []StepStatus{StepPending, StepRunning, StepSuccess, StepFailed, StepSkipped}
}

func (s StepStatus) String() string { return string(s) }

// RecordKind tells a step record from the record of a resume event.
type RecordKind string

const (
	// KindStep is a step the machine executed (the zero value means this).
	KindStep RecordKind = ""
	// KindResume records the event that resumed a suspended run; its
	// output is the event's payload.
	KindResume RecordKind = "resume"
)

// Usage is the token usage and cost of an llm step.
type Usage struct {
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	TotalTokens      int     `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

func (u *Usage) add(o Usage) {
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.TotalTokens += o.TotalTokens
	u.CostUSD += o.CostUSD
}

// tokens is the usage counted against max_tokens.
func (u Usage) tokens() int {
	if u.TotalTokens > 0 {
		return u.TotalTokens
	}
	return u.PromptTokens + u.CompletionTokens
}

// StepRecord is the trace of one executed step, or of a resume event.
//
// Output holds the raw value the step produced, references included; what a
// reader is shown is a projection of it (see package projection).
type StepRecord struct {
	Index  int        `json:"index"`
	StepID string     `json:"step_id"`
	Type   StepType   `json:"type"`
	Kind   RecordKind `json:"kind,omitempty"`
	Status StepStatus `json:"status"`
	Output any        `json:"output"`
	Error  string     `json:"error,omitempty"`
	// Retries is the number of attempts after the first.
	Retries int   `json:"retries"`
	Usage   Usage `json:"usage"`
	// StateHash is the SHA-256 of the canonical state after this record.
	StateHash string `json:"state_hash"`
	// Next is the id of the step the run goes to after this one; "" when
	// the run ends here.
	Next string `json:"next,omitempty"`
	// TimedOut is set when the step timed out and on_timeout gave the
	// fallback value.
	TimedOut bool `json:"timed_out,omitempty"`
	// RawOutput is the model's answer when it differs from Output (an
	// allowed_outputs mismatch replaced by the fallback); replay needs it.
	RawOutput *string `json:"raw_output,omitempty"`
	// Source is the resume event's source, for a KindResume record.
	Source string `json:"source,omitempty"`
	// Log is what a tool wrote to its log.
	Log string `json:"log,omitempty"`
	// Tool names the module and manifest a tool step ran.
	Tool *ToolProvenance `json:"tool,omitempty"`
	// SubSteps are the records of a parallel step's sub-steps, in program
	// order.
	SubSteps []SubStepRecord `json:"sub_steps,omitempty"`

	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DurationMS float64   `json:"duration_ms"`
}

// SubStepRecord is the trace of one sub-step of a parallel step.
type SubStepRecord struct {
	StepID     string          `json:"step_id"`
	Type       StepType        `json:"type"`
	Status     StepStatus      `json:"status"`
	Output     any             `json:"output"`
	Error      string          `json:"error,omitempty"`
	Retries    int             `json:"retries"`
	Usage      Usage           `json:"usage"`
	TimedOut   bool            `json:"timed_out,omitempty"`
	RawOutput  *string         `json:"raw_output,omitempty"`
	Log        string          `json:"log,omitempty"`
	Tool       *ToolProvenance `json:"tool,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	DurationMS float64         `json:"duration_ms"`
}

// StepMetrics counts what a run did.
type StepMetrics struct {
	LLMCalls       int `json:"llm_calls"`
	ToolCalls      int `json:"tool_calls"`
	ConditionEvals int `json:"condition_evals"`
	RetriesTotal   int `json:"retries_total"`
}

// Snapshot is one entry of Trace.StateSnapshots: the record index and the
// state hash after it. It encodes as the original's [index, "sha256"] pair.
type Snapshot struct {
	Index int
	Hash  string
}

// MarshalJSON encodes the snapshot as [index, hash].
func (s Snapshot) MarshalJSON() ([]byte, error) { return json.Marshal([]any{s.Index, s.Hash}) }

// UnmarshalJSON decodes [index, hash].
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return &json.UnmarshalTypeError{Value: "array", Type: nil}
	}
	if err := json.Unmarshal(pair[0], &s.Index); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &s.Hash)
}

// Trace is the record of a run. It is everything needed to continue the run
// in another process (with the program and the input) and everything replay
// compares.
type Trace struct {
	TraceID     string       `json:"trace_id"`
	ProgramName string       `json:"program_name"`
	Status      Status       `json:"status"`
	Steps       []StepRecord `json:"steps"`
	FinalOutput any          `json:"final_output"`
	Error       string       `json:"error,omitempty"`
	// StateSnapshots lists [record index, state hash] after each record.
	StateSnapshots []Snapshot `json:"state_snapshots"`
	// InitialStateHash is the hash of the state before the first step.
	InitialStateHash string `json:"initial_state_hash"`
	// StateRoot is the Merkle root over the snapshot hashes (see
	// canonical.MerkleRoot).
	StateRoot       string      `json:"state_root"`
	SuspendedStepID string      `json:"suspended_step_id,omitempty"`
	StepMetrics     StepMetrics `json:"step_metrics"`
	Usage           Usage       `json:"usage"`

	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS float64    `json:"duration_ms"`
}

// StepEvent tells an Observer about a step.
type StepEvent struct {
	TraceID string
	// Record is the step's record; for StepStarted only StepID, Type, Index
	// and StartedAt are set. The observer must not modify it, and must
	// copy what it keeps: StepStarted's record is reused for the next step.
	Record *StepRecord
	// Status is the run's status after the step (StepFinished only).
	Status Status
	// Trace is the run's trace so far; read-only, valid during the call.
	Trace *Trace
	// State is the run's state after the step: read-only, valid during the
	// call.
	State map[string]any
	// OutputJSON, for StepFinished, is the canonical JSON (RFC 8785) of
	// Record.Output as the state hash took it, when the step stored its
	// output in the state (a successful or skipped step, a resume); nil
	// otherwise. Read-only, valid during the call: an observer that
	// encodes the output canonically can use these bytes instead.
	OutputJSON []byte
}

// Tally recomputes StepMetrics and Usage from the step records, as the run
// counted them: a store that does not rewrite the header at every step
// uses it to show a run in progress.
func (tr *Trace) Tally() {
	tr.StepMetrics, tr.Usage = StepMetrics{}, Usage{}
	for i := range tr.Steps {
		if rec := &tr.Steps[i]; rec.Kind == KindStep {
			tally(&tr.StepMetrics, &tr.Usage, rec.Type, rec)
		}
	}
}
