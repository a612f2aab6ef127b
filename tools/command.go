package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/sys"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Command is a manifest's "command" section: how a WASI command module (an
// existing program, such as jq) is called, when it does not speak the tool
// ABI's JSON in, one JSON value out. It changes only what the module sees
// on argv and stdin and how its stdout and exit code are read; it grants
// no capability, so an upload may use it freely. See docs/tool-abi.md,
// "WASI command programs".
type Command struct {
	// Argv follows argv[0], which is always the tool's name. An entry
	// that is exactly {name} is replaced by the call's string argument
	// name, whole, as one argv entry: never split, never joined with text
	// around it. An entry that is exactly {{name}} passes {name}
	// literally; every other entry is passed as written. At most
	// MaxArgvEntries entries.
	Argv []string `json:"argv,omitempty"`
	// Stdin is what the module reads on stdin: StdinJSON (the default:
	// the call's arguments as JSON, as the tool ABI has it), StdinNone
	// (nothing), or {name}: the argument name, a string as its raw text
	// and any other value as its JSON encoding.
	Stdin string `json:"stdin,omitempty"`
	// Stdout says how stdout is read: StdoutJSON (the default: exactly
	// one JSON value, as the tool ABI has it), StdoutJSONLines (any number
	// of JSON values; the result is {"results": [...]}) or StdoutText
	// (the result is {"stdout": "<text>", "exit_code": n}).
	Stdout string `json:"stdout,omitempty"`
	// ExitCodes says what exit codes mean, keyed by the code in decimal
	// (0..255): ExitSuccess (the call succeeded and stdout is its
	// result) or ExitFailure (the tool reported an error: the call fails
	// with ErrToolFailed, quoting stderr). 0 is always a success; an
	// unlisted non-zero code fails the call with an *ExitError.
	ExitCodes map[string]string `json:"exit_codes,omitempty"`
}

// Values of Command.Stdin, Command.Stdout and Command.ExitCodes.
const (
	StdinJSON       = "json"
	StdinNone       = "none"
	StdoutJSON      = "json"
	StdoutJSONLines = "json_lines"
	StdoutText      = "text"
	ExitSuccess     = "success"
	ExitFailure     = "error"
)

// Bounds of a command's argv.
const (
	// MaxArgvEntries bounds the entries of Command.Argv.
	MaxArgvEntries = 64
	// MaxArgvBytes bounds the argv of one call, argv[0] and the
	// arguments substituted into templates included: 128 KiB, Linux's
	// bound on one argument (MAX_ARG_STRLEN). Larger data goes on stdin.
	MaxArgvBytes = 128 << 10
)

// templateRE matches an argv entry or stdin that names an argument; its
// group is the name. escapedRE matches the escape {{name}}.
var (
	templateRE = regexp.MustCompile(`^\{([A-Za-z_][A-Za-z0-9_.-]{0,63})\}$`)
	escapedRE  = regexp.MustCompile(`^\{(\{[A-Za-z_][A-Za-z0-9_.-]{0,63}\})\}$`)
)

// validate checks the section against the manifest's input schema: every
// template must name a property the schema declares, and a declared type
// must admit a string. bad formats the manifest's error.
func (c *Command) validate(m *Manifest, bad func(string, ...any) error) error {
	if c == nil {
		return nil
	}
	if len(c.Argv) > MaxArgvEntries {
		return bad("command.argv has %d entries, more than %d", len(c.Argv), MaxArgvEntries)
	}
	props, err := schemaProperties(m.InputSchema)
	if err != nil {
		return bad("command: %v", err)
	}
	declared := func(field, name string, needString bool) error {
		p, ok := props[name]
		if !ok {
			if len(m.InputSchema) == 0 {
				return bad("%s names argument %q, but the manifest has no input_schema declaring it", field, name)
			}
			return bad("%s names argument %q, which input_schema.properties does not declare", field, name)
		}
		if needString && !admitsString(p) {
			return bad("%s names argument %q, whose schema does not admit a string", field, name)
		}
		return nil
	}
	size := len(m.Name) + 1
	templated := false
	for i, a := range c.Argv {
		field := fmt.Sprintf("command.argv[%d]", i)
		if strings.IndexByte(a, 0) >= 0 {
			return bad("%s holds a NUL byte", field)
		}
		if name, ok := argTemplate(a); ok {
			if err := declared(field, name, true); err != nil {
				return err
			}
			templated = true
			continue
		}
		size += len(a) + 1
	}
	if size > MaxArgvBytes {
		return bad("command.argv is %d bytes, more than %d", size, MaxArgvBytes)
	}
	switch c.Stdin {
	case "", StdinJSON, StdinNone:
	default:
		name, ok := argTemplate(c.Stdin)
		if !ok {
			return bad("command.stdin must be %q, %q or {argument}, not %q", StdinJSON, StdinNone, c.Stdin)
		}
		if err := declared("command.stdin", name, false); err != nil {
			return err
		}
	}
	switch c.Stdout {
	case "", StdoutJSON, StdoutJSONLines, StdoutText:
	default:
		return bad("command.stdout must be %q, %q or %q, not %q", StdoutJSON, StdoutJSONLines, StdoutText, c.Stdout)
	}
	for k, v := range c.ExitCodes {
		n, err := strconv.Atoi(k)
		if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != k {
			return bad("command.exit_codes: key %q must be an exit code 0..255 in decimal", k)
		}
		if v != ExitSuccess && v != ExitFailure {
			return bad("command.exit_codes[%q] must be %q or %q, not %q", k, ExitSuccess, ExitFailure, v)
		}
		if n == 0 && v != ExitSuccess {
			return bad("command.exit_codes[\"0\"] must be %q: exit code 0 is always a success", ExitSuccess)
		}
	}
	if templated && m.Isolation == IsolationPool {
		return bad("command.argv takes arguments, which a pooled instance cannot: its argv is fixed when it starts (use isolation %q)", IsolationFresh)
	}
	return nil
}

// argTemplate reports whether s is a template {name}, and the name.
func argTemplate(s string) (string, bool) {
	if m := templateRE.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	return "", false
}

// schemaProperties returns the top-level properties an input schema
// declares, each as its raw schema; nil for no schema.
func schemaProperties(schema json.RawMessage) (map[string]json.RawMessage, error) {
	if len(schema) == 0 {
		return nil, nil
	}
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		// A boolean schema declares no properties.
		return nil, nil
	}
	return s.Properties, nil
}

// admitsString reports whether a property's schema may hold a string: it
// declares no type, or a type that is or includes "string".
func admitsString(raw json.RawMessage) bool {
	var s struct {
		Type json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(bytes.TrimSpace(raw)) != "false"
	}
	if len(s.Type) == 0 {
		return true
	}
	var one string
	if json.Unmarshal(s.Type, &one) == nil {
		return one == "string"
	}
	var many []string
	if json.Unmarshal(s.Type, &many) == nil {
		return slices.Contains(many, "string")
	}
	return false
}

// command is a validated Command ready for calls.
type command struct {
	// argv is the whole argv, argv[0] included, with templates left in
	// place and escapes resolved; tmpl[i] is the argument argv[i] takes,
	// "" for a literal.
	argv  []string
	tmpl  []string
	fixed bool // no templates: argv is the same for every call
	// stdinArg is the argument stdin takes; "" with stdinNone or JSON.
	stdinArg  string
	stdinNone bool
	stdout    string
	// success and failure are the exit codes listed as such.
	success, failure map[uint32]bool
}

// newCommand prepares c for the tool name; nil for no section.
func newCommand(name string, c *Command) *command {
	if c == nil {
		return nil
	}
	cmd := &command{argv: []string{name}, tmpl: []string{""}, fixed: true, stdout: c.Stdout,
		success: map[uint32]bool{}, failure: map[uint32]bool{}}
	for _, a := range c.Argv {
		if arg, ok := argTemplate(a); ok {
			cmd.argv, cmd.tmpl, cmd.fixed = append(cmd.argv, a), append(cmd.tmpl, arg), false
			continue
		}
		if m := escapedRE.FindStringSubmatch(a); m != nil {
			a = m[1]
		}
		cmd.argv, cmd.tmpl = append(cmd.argv, a), append(cmd.tmpl, "")
	}
	switch c.Stdin {
	case "", StdinJSON:
	case StdinNone:
		cmd.stdinNone = true
	default:
		cmd.stdinArg, _ = argTemplate(c.Stdin)
	}
	if cmd.stdout == "" {
		cmd.stdout = StdoutJSON
	}
	for k, v := range c.ExitCodes {
		n, _ := strconv.Atoi(k)
		if v == ExitSuccess {
			cmd.success[uint32(n)] = true
		} else {
			cmd.failure[uint32(n)] = true
		}
	}
	return cmd
}

// input returns the call's stdin and, when the argv takes arguments, its
// argv (nil when it is fixed); jsonArgs is the arguments as JSON, the
// default stdin. A missing or non-string argument is ErrInvalidArgs,
// naming it.
func (c *command) input(args map[string]any, jsonArgs []byte) ([]byte, []string, error) {
	stdin := jsonArgs
	switch {
	case c.stdinNone:
		stdin = nil
	case c.stdinArg != "":
		v, ok := args[c.stdinArg]
		if !ok {
			return nil, nil, detail(ErrInvalidArgs, "argument %q is missing: the tool's stdin takes it", c.stdinArg)
		}
		if s, ok := v.(string); ok {
			stdin = []byte(s)
		} else {
			var err error
			if stdin, err = json.Marshal(v); err != nil {
				return nil, nil, detail(ErrInvalidArgs, "argument %q for the tool's stdin: %v", c.stdinArg, err)
			}
		}
	}
	if c.fixed {
		return stdin, nil, nil
	}
	argv := slices.Clone(c.argv)
	size := 0
	for i, name := range c.tmpl {
		if name != "" {
			s, err := stringArg(args, name, fmt.Sprintf("argv[%d]", i))
			if err != nil {
				return nil, nil, err
			}
			if strings.IndexByte(s, 0) >= 0 {
				return nil, nil, detail(ErrInvalidArgs, "argument %q holds a NUL byte, which argv[%d] cannot carry", name, i)
			}
			argv[i] = s
		}
		size += len(argv[i]) + 1
	}
	if size > MaxArgvBytes {
		return nil, nil, detail(ErrInvalidArgs, "argv would be %s bytes, more than %s (MaxArgvBytes): pass large data on stdin", jsonlimit.Group(size), jsonlimit.Group(MaxArgvBytes))
	}
	return stdin, argv, nil
}

// stringArg returns the string argument name, which where takes.
func stringArg(args map[string]any, name, where string) (string, error) {
	v, ok := args[name]
	if !ok {
		return "", detail(ErrInvalidArgs, "argument %q is missing: the tool's %s takes it", name, where)
	}
	s, ok := v.(string)
	if !ok {
		return "", detail(ErrInvalidArgs, "argument %q must be a string for the tool's %s, not %s", name, where, jsonType(v))
	}
	return s, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	default:
		return "a number"
	}
}

// exit reads how a run ended: a listed success code becomes no error, and
// the code is returned for the result; any other outcome passes through.
// Codes wazero uses for a killed instance (above 255) are never listed.
func (c *command) exit(runErr error) (uint32, error) {
	if c == nil || runErr == nil {
		return 0, runErr // and no errors.As target escapes to the heap
	}
	var exit *sys.ExitError
	if !errors.As(runErr, &exit) {
		return 0, runErr
	}
	if code := exit.ExitCode(); c.success[code] {
		return code, nil
	}
	return exit.ExitCode(), runErr
}

// failed returns the error of an exit code listed as ExitFailure: the
// tool reported an error, which its stderr (log) says; nil otherwise.
func (c *command) failed(name string, code uint32, log []byte) error {
	if c == nil || !c.failure[code] {
		return nil
	}
	msg := strings.TrimSpace(string(log))
	if msg == "" {
		msg = "no message on stderr"
	}
	return fmt.Errorf("tool %q: %w (%w)", name, detail(ErrToolFailed, "%s", jsonlimit.Excerpt(msg, maxErrorExcerpt)), &ExitError{Code: code})
}

// decode reads stdout as the section says; code is the exit code, which a
// text result carries.
func (c *command) decode(stdout []byte, code uint32) (any, error) {
	if c == nil {
		return decodeOutput(stdout)
	}
	switch c.stdout {
	case StdoutText:
		if bad := invalidUTF8(stdout); bad >= 0 {
			return nil, fmt.Errorf("%w: stdout is not UTF-8 text (byte %s), which a text result must be; %s", ErrInvalidOutput, jsonlimit.Group(bad), outputExcerpt(stdout, bad))
		}
		return map[string]any{"stdout": string(stdout), "exit_code": float64(code)}, nil
	case StdoutJSONLines:
		return decodeLines(stdout)
	default:
		return decodeOutput(stdout)
	}
}

// decodeLines reads stdout as a stream of JSON values, one per line as jq
// -c writes them (any white space between values will do), into
// {"results": [...]}; empty stdout is no result. The wrapped value is
// held to jsonlimit's depth and number limits, as every output is.
func decodeLines(stdout []byte) (any, error) {
	if err := jsonlimit.Check(stdout); err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrInvalidOutput, err, outputExcerpt(stdout, -1))
	}
	results := []any{}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	for {
		start := int(dec.InputOffset())
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			at := start
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				at = int(syn.Offset) - 1
			}
			return nil, fmt.Errorf("%w: stdout value %d is not JSON: %s; %s", ErrInvalidOutput, len(results)+1,
				jsonlimit.Excerpt(err.Error(), 0), outputExcerpt(stdout, at))
		}
		results = append(results, v)
	}
	out := map[string]any{"results": results}
	if err := jsonlimit.CheckValue(out); err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrInvalidOutput, err, outputExcerpt(stdout, -1))
	}
	return out, nil
}

// jsonErrors reports whether an {"error": "..."} result fails the call, as
// the tool ABI has it: only when stdout is one JSON value.
func (c *command) jsonErrors() bool { return c == nil || c.stdout == StdoutJSON }

// invalidUTF8 returns the offset of the first byte of b that is not valid
// UTF-8, or -1.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}
