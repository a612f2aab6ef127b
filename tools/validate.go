package tools

import (
	"bytes"
	"encoding/json"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validateValue checks v against s. v is validated as it is when it holds
// only the types encoding/json decodes to, sparing a decode of doc; any
// other Go value is checked through doc, its JSON encoding.
func validateValue(s *jsonschema.Schema, v any, doc []byte) error {
	if plainJSON(v, 0) {
		return s.Validate(v)
	}
	return validateJSON(s, doc)
}

func validateJSON(s *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// plainJSON reports whether v is made only of the types json.Unmarshal
// produces into an any (plus json.Number), so the validator can read it
// directly. Deep values fall back to the encoded form.
func plainJSON(v any, depth int) bool {
	if depth > 64 {
		return false
	}
	switch v := v.(type) {
	case nil, bool, string, float64, json.Number:
		return true
	case map[string]any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	default:
		return false
	}
}
