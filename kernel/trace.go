package kernel

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
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
	// and StartedAt are set. The observer must not modify it.
	Record *StepRecord
	// Status is the run's status after the step (StepFinished only).
	Status Status
	// Trace is the run's trace so far; read-only, valid during the call.
	Trace *Trace
	// State is the run's state after the step: read-only, valid during the
	// call.
	State map[string]any
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

// DecodeStepRecord sets *rec to what json.Unmarshal(data, rec) gives for a
// zero rec, error included. Reading a trace back decodes every record, and
// encoding/json's reflection and its second validating pass were most of
// that cost; records as json.Marshal writes them are read directly here,
// and anything else (field names spelled otherwise, duplicate or unknown
// fields, nulls, a type mismatch, invalid JSON) is handed to
// encoding/json, which stays the definition of the result.
func DecodeStepRecord(data []byte, rec *StepRecord) error {
	*rec = StepRecord{}
	d := newJSONReader(data)
	if d.stepRecord(rec) && d.atEnd() {
		return nil
	}
	*rec = StepRecord{}
	return json.Unmarshal(data, rec)
}

// DecodeTrace is DecodeStepRecord for a Trace (a stored trace header).
func DecodeTrace(data []byte, tr *Trace) error {
	*tr = Trace{}
	d := newJSONReader(data)
	if d.trace(tr) && d.atEnd() {
		return nil
	}
	*tr = Trace{}
	return json.Unmarshal(data, tr)
}

// DecodeInput is DecodeStepRecord for a run's stored input: what
// json.Unmarshal(data, input) gives for a nil map.
func DecodeInput(data []byte, input *map[string]any) error {
	*input = nil
	d := newJSONReader(data)
	if d.peek() == '{' {
		if v, ok := d.value(); ok && d.atEnd() {
			*input = v.(map[string]any)
			return nil
		}
	}
	*input = nil
	return json.Unmarshal(data, input)
}

// maxReadDepth is how deeply the direct reader follows nesting before it
// gives the value to encoding/json, whose own limit decides.
const maxReadDepth = 1000

// jsonReader reads the JSON the trace types are written as. Every method
// reports false for input it does not handle, which sends the whole value
// to encoding/json; it never reports true for input encoding/json rejects.
type jsonReader struct {
	b []byte
	// s is b as a string: a string without escapes is a substring of it,
	// one allocation for the whole record instead of one per string.
	s     string
	i     int
	depth int
}

func newJSONReader(data []byte) *jsonReader {
	return &jsonReader{b: data, s: string(data)}
}

func (d *jsonReader) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonReader) atEnd() bool {
	d.skipSpace()
	return d.i == len(d.b)
}

// peek returns the next byte after white space, 0 at the end.
func (d *jsonReader) peek() byte {
	d.skipSpace()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *jsonReader) eat(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

// literal consumes the keyword w (true, false, null).
func (d *jsonReader) literal(w string) bool {
	d.skipSpace()
	if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
		d.i += len(w)
		return true
	}
	return false
}

// object reads an object, calling member for each name (decoded, as
// encoding/json matches it against field names) with the reader placed at
// the value. name is valid only during the call.
func (d *jsonReader) object(member func(name []byte) bool) bool {
	if !d.eat('{') {
		return false
	}
	d.depth++
	if d.depth > maxReadDepth {
		return false
	}
	if !d.eat('}') {
		for {
			name, ok := d.strBytes()
			if !ok || !d.eat(':') || !member(name) {
				return false
			}
			if d.eat(',') {
				continue
			}
			if !d.eat('}') {
				return false
			}
			break
		}
	}
	d.depth--
	return true
}

// array reads an array, calling elem with the reader placed at each
// element; empty reports whether there were none.
func (d *jsonReader) array(elem func() bool) (empty, ok bool) {
	if !d.eat('[') {
		return false, false
	}
	d.depth++
	if d.depth > maxReadDepth {
		return false, false
	}
	if d.eat(']') {
		d.depth--
		return true, true
	}
	for {
		if !elem() {
			return false, false
		}
		if d.eat(',') {
			continue
		}
		if !d.eat(']') {
			return false, false
		}
		d.depth--
		return false, true
	}
}

// once records field bit in seen, refusing a repeated field: encoding/json
// merges a repeat into the first, which is not worth copying.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str reads a string as encoding/json decodes it: escapes resolved, bad
// UTF-8 and lone surrogates replaced by U+FFFD.
func (d *jsonReader) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	if d.plain() {
		return d.s[start : d.i-1], true
	}
	b, ok := d.strSlow(start)
	return string(b), ok
}

// strBytes is str as bytes that alias the input when the string needs no
// decoding.
func (d *jsonReader) strBytes() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	start := d.i
	if d.plain() {
		return d.b[start : d.i-1], true
	}
	return d.strSlow(start)
}

// plain passes over the rest of a string (the reader just after its
// opening quote) and its closing quote, if it is ASCII without escapes,
// which decodes to itself; otherwise it reports false and stays put.
func (d *jsonReader) plain() bool {
	b := d.b
	for i := d.i; i < len(b); i++ {
		if c := b[i]; !plainByte[c] {
			if c == '"' {
				d.i = i + 1
				return true
			}
			return false
		}
	}
	return false
}

// plainByte marks the bytes a string may hold and still decode to itself.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strSlow finishes a string from start (just after its opening quote)
// that holds escapes or non-ASCII bytes, following encoding/json's
// scanner (which escapes are valid) and its unquote (what they become).
func (d *jsonReader) strSlow(start int) ([]byte, bool) {
	b := d.b
	out := make([]byte, 0, len(b)-start)
	i := start
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.i = i + 1
			return out, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if i+1 >= len(b) {
				return nil, false
			}
			switch b[i+1] {
			case '"', '\\', '/':
				out = append(out, b[i+1])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i:])
				if r < 0 {
					return nil, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4(b[i:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return nil, false
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return nil, false
}

// hex4 decodes \uXXXX at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number's text, checked against JSON's grammar (which
// strconv's is wider than); integer reports it has no fraction or
// exponent.
func (d *jsonReader) number() (text []byte, integer, ok bool) {
	d.skipSpace()
	b, start := d.b, d.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	d.i = i
	return b[start:i], integer, true
}

// smallInt parses an integer's text of at most 18 digits, which int64
// holds exactly.
func smallInt(text []byte) (int64, bool) {
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	if len(text) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range text {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// int reads a number into an int as encoding/json does: an integer that
// fits, anything else refused.
func (d *jsonReader) int() (int, bool) {
	text, integer, ok := d.number()
	if !ok || !integer {
		return 0, false
	}
	n, ok := smallInt(text)
	if !ok {
		var err error
		if n, err = strconv.ParseInt(string(text), 10, 64); err != nil {
			return 0, false
		}
	}
	if int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

// float reads a number into a float64 as encoding/json does.
func (d *jsonReader) float() (float64, bool) {
	text, integer, ok := d.number()
	if !ok {
		return 0, false
	}
	// Up to 15 digits an integer converts exactly; -0 keeps its sign
	// through ParseFloat.
	if integer && len(text) <= 15 && string(text) != "-0" {
		n, _ := smallInt(text)
		return float64(n), true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func (d *jsonReader) bool() (bool, bool) {
	switch d.peek() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	}
	return false, false
}

// time reads a time.Time the way encoding/json does: its UnmarshalJSON
// on the literal's text, quotes included.
func (d *jsonReader) time(t *time.Time) bool {
	if d.peek() != '"' {
		return false
	}
	start := d.i
	d.i++
	for d.i < len(d.b) && d.b[d.i] != '"' {
		if c := d.b[d.i]; c == '\\' || c < 0x20 {
			return false
		}
		d.i++
	}
	if d.i == len(d.b) {
		return false
	}
	d.i++
	return t.UnmarshalJSON(d.b[start:d.i]) == nil
}

// value reads any JSON value as encoding/json decodes it into an any.
func (d *jsonReader) value() (any, bool) {
	switch c := d.peek(); {
	case c == '"':
		return d.str()
	case c == '{':
		m := make(map[string]any)
		ok := d.object(func(name []byte) bool {
			key := string(name)
			v, ok := d.value()
			m[key] = v
			return ok
		})
		return m, ok
	case c == '[':
		s := make([]any, 0)
		_, ok := d.array(func() bool {
			v, ok := d.value()
			s = append(s, v)
			return ok
		})
		return s, ok
	case c == 't', c == 'f':
		return d.bool()
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return d.float()
	}
	return nil, false
}

func (d *jsonReader) stepRecord(r *StepRecord) bool {
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "index":
			if ok = once(&seen, 1<<0); ok {
				r.Index, ok = d.int()
			}
		case "step_id":
			if ok = once(&seen, 1<<1); ok {
				r.StepID, ok = d.str()
			}
		case "type":
			if ok = once(&seen, 1<<2); ok {
				var s string
				s, ok = d.str()
				r.Type = StepType(s)
			}
		case "kind":
			if ok = once(&seen, 1<<3); ok {
				var s string
				s, ok = d.str()
				r.Kind = RecordKind(s)
			}
		case "status":
			if ok = once(&seen, 1<<4); ok {
				var s string
				s, ok = d.str()
				r.Status = StepStatus(s)
			}
		case "output":
			if ok = once(&seen, 1<<5); ok {
				r.Output, ok = d.value()
			}
		case "error":
			if ok = once(&seen, 1<<6); ok {
				r.Error, ok = d.str()
			}
		case "retries":
			if ok = once(&seen, 1<<7); ok {
				r.Retries, ok = d.int()
			}
		case "usage":
			ok = once(&seen, 1<<8) && d.usage(&r.Usage)
		case "state_hash":
			if ok = once(&seen, 1<<9); ok {
				r.StateHash, ok = d.str()
			}
		case "next":
			if ok = once(&seen, 1<<10); ok {
				r.Next, ok = d.str()
			}
		case "timed_out":
			if ok = once(&seen, 1<<11); ok {
				r.TimedOut, ok = d.bool()
			}
		case "raw_output":
			ok = once(&seen, 1<<12) && d.stringPtr(&r.RawOutput)
		case "source":
			if ok = once(&seen, 1<<13); ok {
				r.Source, ok = d.str()
			}
		case "log":
			if ok = once(&seen, 1<<14); ok {
				r.Log, ok = d.str()
			}
		case "tool":
			ok = once(&seen, 1<<15) && d.tool(&r.Tool)
		case "sub_steps":
			ok = once(&seen, 1<<16) && d.subSteps(&r.SubSteps)
		case "started_at":
			ok = once(&seen, 1<<17) && d.time(&r.StartedAt)
		case "finished_at":
			ok = once(&seen, 1<<18) && d.time(&r.FinishedAt)
		case "duration_ms":
			if ok = once(&seen, 1<<19); ok {
				r.DurationMS, ok = d.float()
			}
		}
		return ok
	})
}

func (d *jsonReader) subSteps(out *[]SubStepRecord) bool {
	if d.peek() == 'n' {
		return d.literal("null")
	}
	var subs []SubStepRecord
	empty, ok := d.array(func() bool {
		subs = append(subs, SubStepRecord{})
		return d.subStep(&subs[len(subs)-1])
	})
	if empty {
		// encoding/json leaves an empty array non-nil.
		subs = []SubStepRecord{}
	}
	*out = subs
	return ok
}

func (d *jsonReader) subStep(r *SubStepRecord) bool {
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "step_id":
			if ok = once(&seen, 1<<0); ok {
				r.StepID, ok = d.str()
			}
		case "type":
			if ok = once(&seen, 1<<1); ok {
				var s string
				s, ok = d.str()
				r.Type = StepType(s)
			}
		case "status":
			if ok = once(&seen, 1<<2); ok {
				var s string
				s, ok = d.str()
				r.Status = StepStatus(s)
			}
		case "output":
			if ok = once(&seen, 1<<3); ok {
				r.Output, ok = d.value()
			}
		case "error":
			if ok = once(&seen, 1<<4); ok {
				r.Error, ok = d.str()
			}
		case "retries":
			if ok = once(&seen, 1<<5); ok {
				r.Retries, ok = d.int()
			}
		case "usage":
			ok = once(&seen, 1<<6) && d.usage(&r.Usage)
		case "timed_out":
			if ok = once(&seen, 1<<7); ok {
				r.TimedOut, ok = d.bool()
			}
		case "raw_output":
			ok = once(&seen, 1<<8) && d.stringPtr(&r.RawOutput)
		case "log":
			if ok = once(&seen, 1<<9); ok {
				r.Log, ok = d.str()
			}
		case "tool":
			ok = once(&seen, 1<<10) && d.tool(&r.Tool)
		case "started_at":
			ok = once(&seen, 1<<11) && d.time(&r.StartedAt)
		case "finished_at":
			ok = once(&seen, 1<<12) && d.time(&r.FinishedAt)
		case "duration_ms":
			if ok = once(&seen, 1<<13); ok {
				r.DurationMS, ok = d.float()
			}
		}
		return ok
	})
}

func (d *jsonReader) usage(u *Usage) bool {
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "prompt_tokens":
			if ok = once(&seen, 1<<0); ok {
				u.PromptTokens, ok = d.int()
			}
		case "completion_tokens":
			if ok = once(&seen, 1<<1); ok {
				u.CompletionTokens, ok = d.int()
			}
		case "total_tokens":
			if ok = once(&seen, 1<<2); ok {
				u.TotalTokens, ok = d.int()
			}
		case "cost_usd":
			if ok = once(&seen, 1<<3); ok {
				u.CostUSD, ok = d.float()
			}
		}
		return ok
	})
}

func (d *jsonReader) stringPtr(p **string) bool {
	if d.peek() == 'n' {
		*p = nil
		return d.literal("null")
	}
	s, ok := d.str()
	*p = &s
	return ok
}

func (d *jsonReader) tool(p **ToolProvenance) bool {
	if d.peek() == 'n' {
		*p = nil
		return d.literal("null")
	}
	t := new(ToolProvenance)
	*p = t
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "module_sha256":
			if ok = once(&seen, 1<<0); ok {
				t.ModuleSHA256, ok = d.str()
			}
		case "manifest_sha256":
			if ok = once(&seen, 1<<1); ok {
				t.ManifestSHA256, ok = d.str()
			}
		}
		return ok
	})
}

func (d *jsonReader) trace(tr *Trace) bool {
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "trace_id":
			if ok = once(&seen, 1<<0); ok {
				tr.TraceID, ok = d.str()
			}
		case "program_name":
			if ok = once(&seen, 1<<1); ok {
				tr.ProgramName, ok = d.str()
			}
		case "status":
			if ok = once(&seen, 1<<2); ok {
				var s string
				s, ok = d.str()
				tr.Status = Status(s)
			}
		case "steps":
			ok = once(&seen, 1<<3) && d.steps(&tr.Steps)
		case "final_output":
			if ok = once(&seen, 1<<4); ok {
				tr.FinalOutput, ok = d.value()
			}
		case "error":
			if ok = once(&seen, 1<<5); ok {
				tr.Error, ok = d.str()
			}
		case "state_snapshots":
			// Snapshots have their own UnmarshalJSON; only the header's
			// null is read here.
			if ok = once(&seen, 1<<6); ok {
				ok = d.literal("null")
			}
		case "initial_state_hash":
			if ok = once(&seen, 1<<7); ok {
				tr.InitialStateHash, ok = d.str()
			}
		case "state_root":
			if ok = once(&seen, 1<<8); ok {
				tr.StateRoot, ok = d.str()
			}
		case "suspended_step_id":
			if ok = once(&seen, 1<<9); ok {
				tr.SuspendedStepID, ok = d.str()
			}
		case "step_metrics":
			ok = once(&seen, 1<<10) && d.stepMetrics(&tr.StepMetrics)
		case "usage":
			ok = once(&seen, 1<<11) && d.usage(&tr.Usage)
		case "started_at":
			ok = once(&seen, 1<<12) && d.time(&tr.StartedAt)
		case "finished_at":
			if ok = once(&seen, 1<<13); ok {
				if d.peek() == 'n' {
					tr.FinishedAt, ok = nil, d.literal("null")
				} else {
					tr.FinishedAt = new(time.Time)
					ok = d.time(tr.FinishedAt)
				}
			}
		case "duration_ms":
			if ok = once(&seen, 1<<14); ok {
				tr.DurationMS, ok = d.float()
			}
		}
		return ok
	})
}

func (d *jsonReader) steps(out *[]StepRecord) bool {
	if d.peek() == 'n' {
		return d.literal("null")
	}
	var steps []StepRecord
	empty, ok := d.array(func() bool {
		steps = append(steps, StepRecord{})
		return d.stepRecord(&steps[len(steps)-1])
	})
	if empty {
		steps = []StepRecord{}
	}
	*out = steps
	return ok
}

func (d *jsonReader) stepMetrics(m *StepMetrics) bool {
	var seen uint32
	return d.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "llm_calls":
			if ok = once(&seen, 1<<0); ok {
				m.LLMCalls, ok = d.int()
			}
		case "tool_calls":
			if ok = once(&seen, 1<<1); ok {
				m.ToolCalls, ok = d.int()
			}
		case "condition_evals":
			if ok = once(&seen, 1<<2); ok {
				m.ConditionEvals, ok = d.int()
			}
		case "retries_total":
			if ok = once(&seen, 1<<3); ok {
				m.RetriesTotal, ok = d.int()
			}
		}
		return ok
	})
}
