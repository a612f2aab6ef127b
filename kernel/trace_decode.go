package kernel

import (
	"encoding/json"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/jsonread"
)

// DecodeStepRecord sets *rec to what json.Unmarshal(data, rec) gives for a
// zero rec, error included. Reading a trace back decodes every record, and
// encoding/json's reflection and its second validating pass were most of
// that cost; records as json.Marshal writes them are read directly here,
// and anything else (field names spelled otherwise, duplicate or unknown
// fields, nulls, a type mismatch, invalid JSON) is handed to
// encoding/json, which stays the definition of the result.
func DecodeStepRecord(data []byte, rec *StepRecord) error {
	*rec = StepRecord{}
	d := jsonread.New(data)
	if readStepRecord(d, rec) && d.AtEnd() {
		return nil
	}
	*rec = StepRecord{}
	return json.Unmarshal(data, rec)
}

// DecodeTrace is DecodeStepRecord for a Trace (a stored trace header).
func DecodeTrace(data []byte, tr *Trace) error {
	*tr = Trace{}
	d := jsonread.New(data)
	if readTrace(d, tr) && d.AtEnd() {
		return nil
	}
	*tr = Trace{}
	return json.Unmarshal(data, tr)
}

// DecodeInput is DecodeStepRecord for a run's stored input: what
// json.Unmarshal(data, input) gives for a nil map.
func DecodeInput(data []byte, input *map[string]any) error {
	*input = nil
	d := jsonread.New(data)
	if d.Peek() == '{' {
		if v, ok := d.Value(); ok && d.AtEnd() {
			*input = v.(map[string]any)
			return nil
		}
	}
	*input = nil
	return json.Unmarshal(data, input)
}

func readStepRecord(d *jsonread.Reader, r *StepRecord) bool {
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "index":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				r.Index, ok = d.Int()
			}
		case "step_id":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				r.StepID, ok = d.Str()
			}
		case "type":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				var s string
				s, ok = d.Str()
				r.Type = StepType(s)
			}
		case "kind":
			if ok = jsonread.Once(&seen, 1<<3); ok {
				var s string
				s, ok = d.Str()
				r.Kind = RecordKind(s)
			}
		case "status":
			if ok = jsonread.Once(&seen, 1<<4); ok {
				var s string
				s, ok = d.Str()
				r.Status = StepStatus(s)
			}
		case "output":
			if ok = jsonread.Once(&seen, 1<<5); ok {
				r.Output, ok = d.Value()
			}
		case "error":
			if ok = jsonread.Once(&seen, 1<<6); ok {
				r.Error, ok = d.Str()
			}
		case "retries":
			if ok = jsonread.Once(&seen, 1<<7); ok {
				r.Retries, ok = d.Int()
			}
		case "usage":
			ok = jsonread.Once(&seen, 1<<8) && readUsage(d, &r.Usage)
		case "state_hash":
			if ok = jsonread.Once(&seen, 1<<9); ok {
				r.StateHash, ok = d.Str()
			}
		case "next":
			if ok = jsonread.Once(&seen, 1<<10); ok {
				r.Next, ok = d.Str()
			}
		case "timed_out":
			if ok = jsonread.Once(&seen, 1<<11); ok {
				r.TimedOut, ok = d.Bool()
			}
		case "raw_output":
			ok = jsonread.Once(&seen, 1<<12) && readStringPtr(d, &r.RawOutput)
		case "source":
			if ok = jsonread.Once(&seen, 1<<13); ok {
				r.Source, ok = d.Str()
			}
		case "log":
			if ok = jsonread.Once(&seen, 1<<14); ok {
				r.Log, ok = d.Str()
			}
		case "tool":
			ok = jsonread.Once(&seen, 1<<15) && readTool(d, &r.Tool)
		case "sub_steps":
			ok = jsonread.Once(&seen, 1<<16) && readSlice(d, &r.SubSteps, func(s *SubStepRecord) bool { return readSubStep(d, s) })
		case "started_at":
			ok = jsonread.Once(&seen, 1<<17) && d.Time(&r.StartedAt)
		case "finished_at":
			ok = jsonread.Once(&seen, 1<<18) && d.Time(&r.FinishedAt)
		case "duration_ms":
			if ok = jsonread.Once(&seen, 1<<19); ok {
				r.DurationMS, ok = d.Float()
			}
		}
		return ok
	})
}

// readSlice reads null or an array, each element with read, into out.
// Null leaves out untouched (the records decode into zero values, so it
// stays nil); an empty array is a non-nil empty slice, as encoding/json
// leaves it. read is a closure over d rather than a function taking it:
// a reader handed to a function value escapes, and the decoder's own
// reader would then be allocated on every call.
func readSlice[T any](d *jsonread.Reader, out *[]T, read func(*T) bool) bool {
	if d.Peek() == 'n' {
		return d.Literal("null")
	}
	var elems []T
	empty, ok := d.Array(func() bool {
		var zero T
		elems = append(elems, zero)
		return read(&elems[len(elems)-1])
	})
	if empty {
		elems = []T{}
	}
	*out = elems
	return ok
}

func readSubStep(d *jsonread.Reader, r *SubStepRecord) bool {
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "step_id":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				r.StepID, ok = d.Str()
			}
		case "type":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				var s string
				s, ok = d.Str()
				r.Type = StepType(s)
			}
		case "status":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				var s string
				s, ok = d.Str()
				r.Status = StepStatus(s)
			}
		case "output":
			if ok = jsonread.Once(&seen, 1<<3); ok {
				r.Output, ok = d.Value()
			}
		case "error":
			if ok = jsonread.Once(&seen, 1<<4); ok {
				r.Error, ok = d.Str()
			}
		case "retries":
			if ok = jsonread.Once(&seen, 1<<5); ok {
				r.Retries, ok = d.Int()
			}
		case "usage":
			ok = jsonread.Once(&seen, 1<<6) && readUsage(d, &r.Usage)
		case "timed_out":
			if ok = jsonread.Once(&seen, 1<<7); ok {
				r.TimedOut, ok = d.Bool()
			}
		case "raw_output":
			ok = jsonread.Once(&seen, 1<<8) && readStringPtr(d, &r.RawOutput)
		case "log":
			if ok = jsonread.Once(&seen, 1<<9); ok {
				r.Log, ok = d.Str()
			}
		case "tool":
			ok = jsonread.Once(&seen, 1<<10) && readTool(d, &r.Tool)
		case "started_at":
			ok = jsonread.Once(&seen, 1<<11) && d.Time(&r.StartedAt)
		case "finished_at":
			ok = jsonread.Once(&seen, 1<<12) && d.Time(&r.FinishedAt)
		case "duration_ms":
			if ok = jsonread.Once(&seen, 1<<13); ok {
				r.DurationMS, ok = d.Float()
			}
		}
		return ok
	})
}

func readUsage(d *jsonread.Reader, u *Usage) bool {
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "prompt_tokens":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				u.PromptTokens, ok = d.Int()
			}
		case "completion_tokens":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				u.CompletionTokens, ok = d.Int()
			}
		case "total_tokens":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				u.TotalTokens, ok = d.Int()
			}
		case "cost_usd":
			if ok = jsonread.Once(&seen, 1<<3); ok {
				u.CostUSD, ok = d.Float()
			}
		}
		return ok
	})
}

func readStringPtr(d *jsonread.Reader, p **string) bool {
	if d.Peek() == 'n' {
		*p = nil
		return d.Literal("null")
	}
	s, ok := d.Str()
	*p = &s
	return ok
}

func readTool(d *jsonread.Reader, p **ToolProvenance) bool {
	if d.Peek() == 'n' {
		*p = nil
		return d.Literal("null")
	}
	t := new(ToolProvenance)
	*p = t
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "module_sha256":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				t.ModuleSHA256, ok = d.Str()
			}
		case "manifest_sha256":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				t.ManifestSHA256, ok = d.Str()
			}
		case "source":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				t.Source, ok = d.Str()
			}
		case "grants":
			if ok = jsonread.Once(&seen, 1<<3); ok {
				ok = readStringMap(d, &t.Grants)
			}
		case "origin":
			if ok = jsonread.Once(&seen, 1<<4); ok {
				t.Origin, ok = d.Str()
			}
		case "signer":
			if ok = jsonread.Once(&seen, 1<<5); ok {
				t.Signer, ok = d.Str()
			}
		}
		return ok
	})
}

// readStringMap reads a JSON object of strings (null is nil).
func readStringMap(d *jsonread.Reader, p *map[string]string) bool {
	if d.Peek() == 'n' {
		*p = nil
		return d.Literal("null")
	}
	m := map[string]string{}
	*p = m
	return d.Object(func(name []byte) bool {
		k := string(name)
		if _, dup := m[k]; dup {
			return false
		}
		v, ok := d.Str()
		m[k] = v
		return ok
	})
}

func readTrace(d *jsonread.Reader, tr *Trace) bool {
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "trace_id":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				tr.TraceID, ok = d.Str()
			}
		case "program_name":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				tr.ProgramName, ok = d.Str()
			}
		case "status":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				var s string
				s, ok = d.Str()
				tr.Status = Status(s)
			}
		case "steps":
			ok = jsonread.Once(&seen, 1<<3) && readSlice(d, &tr.Steps, func(s *StepRecord) bool { return readStepRecord(d, s) })
		case "final_output":
			if ok = jsonread.Once(&seen, 1<<4); ok {
				tr.FinalOutput, ok = d.Value()
			}
		case "error":
			if ok = jsonread.Once(&seen, 1<<5); ok {
				tr.Error, ok = d.Str()
			}
		case "state_snapshots":
			// Snapshots have their own UnmarshalJSON; only the header's
			// null is read here.
			if ok = jsonread.Once(&seen, 1<<6); ok {
				ok = d.Literal("null")
			}
		case "initial_state_hash":
			if ok = jsonread.Once(&seen, 1<<7); ok {
				tr.InitialStateHash, ok = d.Str()
			}
		case "state_root":
			if ok = jsonread.Once(&seen, 1<<8); ok {
				tr.StateRoot, ok = d.Str()
			}
		case "suspended_step_id":
			if ok = jsonread.Once(&seen, 1<<9); ok {
				tr.SuspendedStepID, ok = d.Str()
			}
		case "step_metrics":
			ok = jsonread.Once(&seen, 1<<10) && readStepMetrics(d, &tr.StepMetrics)
		case "usage":
			ok = jsonread.Once(&seen, 1<<11) && readUsage(d, &tr.Usage)
		case "started_at":
			ok = jsonread.Once(&seen, 1<<12) && d.Time(&tr.StartedAt)
		case "finished_at":
			if ok = jsonread.Once(&seen, 1<<13); ok {
				if d.Peek() == 'n' {
					tr.FinishedAt, ok = nil, d.Literal("null")
				} else {
					tr.FinishedAt = new(time.Time)
					ok = d.Time(tr.FinishedAt)
				}
			}
		case "duration_ms":
			if ok = jsonread.Once(&seen, 1<<14); ok {
				tr.DurationMS, ok = d.Float()
			}
		}
		return ok
	})
}

func readStepMetrics(d *jsonread.Reader, m *StepMetrics) bool {
	var seen uint32
	return d.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "llm_calls":
			if ok = jsonread.Once(&seen, 1<<0); ok {
				m.LLMCalls, ok = d.Int()
			}
		case "tool_calls":
			if ok = jsonread.Once(&seen, 1<<1); ok {
				m.ToolCalls, ok = d.Int()
			}
		case "condition_evals":
			if ok = jsonread.Once(&seen, 1<<2); ok {
				m.ConditionEvals, ok = d.Int()
			}
		case "retries_total":
			if ok = jsonread.Once(&seen, 1<<3); ok {
				m.RetriesTotal, ok = d.Int()
			}
		}
		return ok
	})
}
