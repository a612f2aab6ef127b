package tools

import (
	"encoding/json"

	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
)

// marshalJSON is json.Marshal(v), byte for byte, without reflection for
// the JSON-shaped values calls pass (a tool's arguments and state).
func marshalJSON(v map[string]any) ([]byte, error) {
	return appendJSON(make([]byte, 0, 128), v)
}

// appendJSON is marshalJSON appending to dst (which it may reuse).
func appendJSON(dst []byte, v map[string]any) ([]byte, error) {
	if b, ok := jsonwrite.AppendValue(dst, v); ok {
		return b, nil
	}
	return json.Marshal(v)
}
