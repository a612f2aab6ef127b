package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/store"
)

// rawArguments returns a call's arguments as JSON, "{}" when absent.
func rawArguments(req mcp.CallToolRequest) ([]byte, error) {
	if len(req.Params.RawArguments) > 0 {
		return req.Params.RawArguments, nil
	}
	if req.Params.Arguments == nil {
		return []byte("{}"), nil
	}
	if raw, ok := req.Params.Arguments.(json.RawMessage); ok {
		return raw, nil
	}
	b, err := json.Marshal(req.Params.Arguments)
	if err != nil {
		return nil, argError("arguments: %v", err)
	}
	return b, nil
}

// decodeArgs decodes a call's arguments into dst (a pointer to a struct
// with json tags) strictly: an unknown argument or a wrong type is an
// invalid_argument error naming the argument and listing the valid ones,
// so a model can correct its call.
func decodeArgs(req mcp.CallToolRequest, dst any) error {
	raw, err := rawArguments(req)
	if err != nil {
		return err
	}
	return decodeArgsJSON(raw, dst)
}

// decodeArgsJSON is decodeArgs on raw JSON; it is the decoder FuzzDecodeArgs
// exercises.
func decodeArgsJSON(raw []byte, dst any) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	if trimmed[0] != '{' {
		return argError("arguments must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return describeDecodeError(err, dst)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return argError("arguments: unexpected data after the JSON object")
	}
	return checkIDArgs(dst)
}

// aliasArg resolves an argument given under its name or under a deprecated
// alias kept for one release: either may be given; both, only if they are
// equal.
func aliasArg(name, value, alias, aliasValue string) (string, error) {
	switch {
	case aliasValue == "":
		return value, nil
	case value == "" || value == aliasValue:
		return aliasValue, nil
	}
	return "", argError("arguments %q and %q (its deprecated alias) differ: %s and %s; give only %q", name, alias, store.Clip(value), store.Clip(aliasValue), name)
}

// maxCursorBytes bounds a paging cursor; the server's own are far shorter.
const maxCursorBytes = 1024

// idArgs are the arguments that carry an id or a key, by JSON name, and
// their limits (see store.CheckID): every tool's arguments are checked
// here, so a value over a limit is an invalid_argument error naming the
// argument and the limit, never a failure deeper down, and only a clipped
// excerpt of it is ever shown or logged.
var idArgs = map[string]func(string) error{
	"idempotency_key": store.CheckIdempotencyKey,
	"save_as":         func(s string) error { return store.CheckID("program", s) },
	"program_id":      func(s string) error { return store.CheckID("program", s) },
	"trace_id":        func(s string) error { return store.CheckID("trace", s) },
	"execution_id":    func(s string) error { return store.CheckID("trace", s) },
	// Tool names, and get_tool's "name@sha256:<hex>" pins.
	"name": func(s string) error { return store.CheckID("tool", s) },
	// Secret ids (put_secret, erase_secret, get_secret_ref).
	"id": store.CheckSecretID,
	"cursor": func(s string) error {
		if len(s) > maxCursorBytes {
			return fmt.Errorf("cursor %s is %d bytes, over the %d-byte limit", store.Clip(s), len(s), maxCursorBytes)
		}
		return nil
	},
}

// checkIDArgs applies idArgs to the string fields of the decoded struct
// dst points to; an empty value is an absent one, which the tool itself
// requires or not.
func checkIDArgs(dst any) error {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	t := v.Type()
	for i := range t.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.String || f.Len() == 0 {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		check, ok := idArgs[name]
		if !ok {
			continue
		}
		if err := check(f.String()); err != nil {
			msg := err.Error()
			for _, prefix := range []string{store.ErrInvalidID.Error() + ": ", store.ErrInvalidRef.Error() + ": "} {
				msg = strings.TrimPrefix(msg, prefix)
			}
			return argError("argument %q: %s", name, msg)
		}
	}
	return nil
}

// describeDecodeError rewrites encoding/json's messages in the tool's own
// terms.
func describeDecodeError(err error, dst any) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return argError("argument %q: expected %s, got %s", typeErr.Field, jsonKind(typeErr.Type), typeErr.Value)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return argError("unknown argument %s; this tool takes: %s", name, strings.Join(argNames(dst), ", "))
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return argError("arguments are not valid JSON: %v", err)
	}
	return argError("arguments: %s", strings.TrimPrefix(msg, "json: "))
}

// jsonKind names a Go type the way a JSON Schema would.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return t.String()
}

// argNames lists the json names of dst's fields, sorted.
func argNames(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// objectArg accepts an argument that must be a JSON object, given either
// as an object or as a string holding one: models often stringify nested
// JSON. Absent or null gives nil.
func objectArg(name string, raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, argError("argument %q: %v", name, err)
		}
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) == 0 || inner[0] != '{' {
			return nil, argError("argument %q: expected a JSON object (or a string holding one), got a string that does not start with '{'", name)
		}
		if !json.Valid(inner) {
			var v any
			err := json.Unmarshal(inner, &v)
			return nil, argError("argument %q: the string is not valid JSON: %v", name, err)
		}
		return inner, nil
	}
	if raw[0] != '{' {
		return nil, argError("argument %q: expected a JSON object (or a string holding one), got %s", name, jsonValueKind(raw))
	}
	return raw, nil
}

// jsonValueKind names the kind of a JSON value from its first byte.
func jsonValueKind(raw []byte) string {
	switch raw[0] {
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '"':
		return "a string"
	case '{':
		return "an object"
	}
	return "a number"
}

// objectMap decodes an object argument (see objectArg) into a map, numbers
// as float64 like every other JSON path into the runtime.
func objectMap(name string, raw json.RawMessage) (map[string]any, error) {
	obj, err := objectArg(name, raw)
	if err != nil || obj == nil {
		return nil, err
	}
	if err := jsonlimit.Check(obj); err != nil {
		return nil, argError("argument %q: %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, argError("argument %q: %v", name, clipText(err.Error(), 300))
	}
	return m, nil
}

// anyArg decodes a free-form argument (a resume payload); absent is nil.
func anyArg(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if err := jsonlimit.Check(raw); err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errors.New(clipText(err.Error(), 300))
	}
	return v, nil
}

// intArg checks an optional integer argument's range; def when absent.
func intArg(name string, n *int, def, lo, hi int) (int, error) {
	if n == nil {
		return def, nil
	}
	if *n < lo || *n > hi {
		return 0, argError("argument %q: %d is out of range [%d, %d]", name, *n, lo, hi)
	}
	return *n, nil
}

// requireString is an error naming a missing required string argument.
func requireString(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return argError("argument %q is required", name)
	}
	return nil
}
