package kernel

import (
	"encoding/json"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
)

// AppendStepRecord appends rec as json.Marshal(rec) writes it, byte for
// byte, without reflection: the step path encodes one record per step, and
// the store hashes exactly these bytes. Values of a type it does not know
// (or that json.Marshal refuses) make it hand the whole record to
// json.Marshal, whose result or error it returns; TestAppendStepRecord and
// FuzzAppendStepRecord hold the two together.
func AppendStepRecord(dst []byte, rec *StepRecord) ([]byte, error) {
	n := len(dst)
	if b, ok := appendStepRecord(dst, rec); ok {
		return b, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return dst[:n], err
	}
	return append(dst[:n], b...), nil
}

// AppendTrace is AppendStepRecord for a trace (a run's header, with or
// without its steps).
func AppendTrace(dst []byte, tr *Trace) ([]byte, error) {
	n := len(dst)
	if b, ok := appendTrace(dst, tr); ok {
		return b, nil
	}
	b, err := marshalTrace(*tr)
	if err != nil {
		return dst[:n], err
	}
	return append(dst[:n], b...), nil
}

// marshalTrace is AppendTrace's json.Marshal path, on a copy of its own:
// reflection makes what it encodes escape, and a caller's trace (often a
// local header) should not move to the heap for the rare one that takes
// this path.
func marshalTrace(tr Trace) ([]byte, error) { return json.Marshal(&tr) }

func appendUsage(b []byte, u *Usage) ([]byte, bool) {
	b = append(b, `{"prompt_tokens":`...)
	b = jsonwrite.AppendInt(b, u.PromptTokens)
	b = append(b, `,"completion_tokens":`...)
	b = jsonwrite.AppendInt(b, u.CompletionTokens)
	b = append(b, `,"total_tokens":`...)
	b = jsonwrite.AppendInt(b, u.TotalTokens)
	b = append(b, `,"cost_usd":`...)
	b, ok := jsonwrite.AppendFloat(b, u.CostUSD)
	return append(b, '}'), ok
}

func appendTool(b []byte, t *ToolProvenance) []byte {
	b = append(b, `{"module_sha256":`...)
	b = jsonwrite.AppendString(b, t.ModuleSHA256)
	b = append(b, `,"manifest_sha256":`...)
	b = jsonwrite.AppendString(b, t.ManifestSHA256)
	if t.Source != "" {
		b = append(b, `,"source":`...)
		b = jsonwrite.AppendString(b, t.Source)
	}
	if len(t.Grants) > 0 {
		b = append(b, `,"grants":`...)
		b = jsonwrite.AppendStringMap(b, t.Grants)
	}
	if t.Origin != "" {
		b = append(b, `,"origin":`...)
		b = jsonwrite.AppendString(b, t.Origin)
	}
	if t.Signer != "" {
		b = append(b, `,"signer":`...)
		b = jsonwrite.AppendString(b, t.Signer)
	}
	return append(b, '}')
}

// appendStepRecord writes the fields in StepRecord's declaration order,
// with its omitempty rules.
func appendStepRecord(b []byte, r *StepRecord) ([]byte, bool) {
	var ok bool
	b = append(b, `{"index":`...)
	b = jsonwrite.AppendInt(b, r.Index)
	b = append(b, `,"step_id":`...)
	b = jsonwrite.AppendString(b, r.StepID)
	b = append(b, `,"type":`...)
	b = jsonwrite.AppendString(b, string(r.Type))
	if r.Kind != "" {
		b = append(b, `,"kind":`...)
		b = jsonwrite.AppendString(b, string(r.Kind))
	}
	b = append(b, `,"status":`...)
	b = jsonwrite.AppendString(b, string(r.Status))
	b = append(b, `,"output":`...)
	if b, ok = jsonwrite.AppendValue(b, r.Output); !ok {
		return b, false
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonwrite.AppendString(b, r.Error)
	}
	b = append(b, `,"retries":`...)
	b = jsonwrite.AppendInt(b, r.Retries)
	b = append(b, `,"usage":`...)
	if b, ok = appendUsage(b, &r.Usage); !ok {
		return b, false
	}
	b = append(b, `,"state_hash":`...)
	b = jsonwrite.AppendString(b, r.StateHash)
	if r.Next != "" {
		b = append(b, `,"next":`...)
		b = jsonwrite.AppendString(b, r.Next)
	}
	if r.TimedOut {
		b = append(b, `,"timed_out":true`...)
	}
	if r.RawOutput != nil {
		b = append(b, `,"raw_output":`...)
		b = jsonwrite.AppendString(b, *r.RawOutput)
	}
	if r.Source != "" {
		b = append(b, `,"source":`...)
		b = jsonwrite.AppendString(b, r.Source)
	}
	if r.Log != "" {
		b = append(b, `,"log":`...)
		b = jsonwrite.AppendString(b, r.Log)
	}
	if r.Tool != nil {
		b = append(b, `,"tool":`...)
		b = appendTool(b, r.Tool)
	}
	if len(r.SubSteps) > 0 {
		b = append(b, `,"sub_steps":[`...)
		for i := range r.SubSteps {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendSubStep(b, &r.SubSteps[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return appendTimes(b, &r.StartedAt, &r.FinishedAt, r.DurationMS)
}

func appendSubStep(b []byte, s *SubStepRecord) ([]byte, bool) {
	var ok bool
	b = append(b, `{"step_id":`...)
	b = jsonwrite.AppendString(b, s.StepID)
	b = append(b, `,"type":`...)
	b = jsonwrite.AppendString(b, string(s.Type))
	b = append(b, `,"status":`...)
	b = jsonwrite.AppendString(b, string(s.Status))
	b = append(b, `,"output":`...)
	if b, ok = jsonwrite.AppendValue(b, s.Output); !ok {
		return b, false
	}
	if s.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonwrite.AppendString(b, s.Error)
	}
	b = append(b, `,"retries":`...)
	b = jsonwrite.AppendInt(b, s.Retries)
	b = append(b, `,"usage":`...)
	if b, ok = appendUsage(b, &s.Usage); !ok {
		return b, false
	}
	if s.TimedOut {
		b = append(b, `,"timed_out":true`...)
	}
	if s.RawOutput != nil {
		b = append(b, `,"raw_output":`...)
		b = jsonwrite.AppendString(b, *s.RawOutput)
	}
	if s.Log != "" {
		b = append(b, `,"log":`...)
		b = jsonwrite.AppendString(b, s.Log)
	}
	if s.Tool != nil {
		b = append(b, `,"tool":`...)
		b = appendTool(b, s.Tool)
	}
	return appendTimes(b, &s.StartedAt, &s.FinishedAt, s.DurationMS)
}

// appendTimes ends a record: started_at, finished_at, duration_ms, '}'.
func appendTimes(b []byte, started, finished *time.Time, ms float64) ([]byte, bool) {
	var ok bool
	b = append(b, `,"started_at":`...)
	if b, ok = jsonwrite.AppendTime(b, *started); !ok {
		return b, false
	}
	b = append(b, `,"finished_at":`...)
	if b, ok = jsonwrite.AppendTime(b, *finished); !ok {
		return b, false
	}
	b = append(b, `,"duration_ms":`...)
	if b, ok = jsonwrite.AppendFloat(b, ms); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendTrace writes the fields in Trace's declaration order, with its
// omitempty rules.
func appendTrace(b []byte, t *Trace) ([]byte, bool) {
	var ok bool
	b = append(b, `{"trace_id":`...)
	b = jsonwrite.AppendString(b, t.TraceID)
	b = append(b, `,"program_name":`...)
	b = jsonwrite.AppendString(b, t.ProgramName)
	b = append(b, `,"status":`...)
	b = jsonwrite.AppendString(b, string(t.Status))
	b = append(b, `,"steps":`...)
	if t.Steps == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range t.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendStepRecord(b, &t.Steps[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"final_output":`...)
	if b, ok = jsonwrite.AppendValue(b, t.FinalOutput); !ok {
		return b, false
	}
	if t.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonwrite.AppendString(b, t.Error)
	}
	b = append(b, `,"state_snapshots":`...)
	if t.StateSnapshots == nil {
		b = append(b, "null"...)
	} else {
		// Snapshot.MarshalJSON writes [index, hash].
		b = append(b, '[')
		for i, s := range t.StateSnapshots {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = jsonwrite.AppendInt(b, s.Index)
			b = append(b, ',')
			b = jsonwrite.AppendString(b, s.Hash)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	b = append(b, `,"initial_state_hash":`...)
	b = jsonwrite.AppendString(b, t.InitialStateHash)
	b = append(b, `,"state_root":`...)
	b = jsonwrite.AppendString(b, t.StateRoot)
	if t.SuspendedStepID != "" {
		b = append(b, `,"suspended_step_id":`...)
		b = jsonwrite.AppendString(b, t.SuspendedStepID)
	}
	m := &t.StepMetrics
	b = append(b, `,"step_metrics":{"llm_calls":`...)
	b = jsonwrite.AppendInt(b, m.LLMCalls)
	b = append(b, `,"tool_calls":`...)
	b = jsonwrite.AppendInt(b, m.ToolCalls)
	b = append(b, `,"condition_evals":`...)
	b = jsonwrite.AppendInt(b, m.ConditionEvals)
	b = append(b, `,"retries_total":`...)
	b = jsonwrite.AppendInt(b, m.RetriesTotal)
	b = append(b, `},"usage":`...)
	if b, ok = appendUsage(b, &t.Usage); !ok {
		return b, false
	}
	b = append(b, `,"started_at":`...)
	if b, ok = jsonwrite.AppendTime(b, t.StartedAt); !ok {
		return b, false
	}
	if t.FinishedAt != nil {
		b = append(b, `,"finished_at":`...)
		if b, ok = jsonwrite.AppendTime(b, *t.FinishedAt); !ok {
			return b, false
		}
	}
	b = append(b, `,"duration_ms":`...)
	if b, ok = jsonwrite.AppendFloat(b, t.DurationMS); !ok {
		return b, false
	}
	return append(b, '}'), true
}
