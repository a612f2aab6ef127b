package tools

import (
	"encoding/json"
	"math"
)

// quickSchema is a pre-check for the shape nearly every manifest schema
// has: an object with plainly typed properties and required keys. It is
// sound, not complete: when it accepts a value the full validator would
// too, so the call skips the full validator (the larger part of a pooled
// call's cost); when it rejects, the full validator runs and says why.
type quickSchema struct {
	// props are the typed properties: a slice, as ranging over a map
	// costs more than the lookups of a small schema.
	props    []quickProp
	required []string
}

// quickProp is one property with its JSON Schema type.
type quickProp struct{ name, typ string }

// quickKeys are the annotation keys that do not constrain a value.
var quickKeys = map[string]bool{"title": true, "description": true, "$comment": true}

var quickTypes = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true, "object": true, "array": true, "null": true}

// compileQuick returns the quick check for raw, or nil when raw uses
// anything beyond {"type":"object","properties":{…},"required":[…]} with
// properties of the form {"type":"<one type>"}.
func compileQuick(raw json.RawMessage) *quickSchema {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	q := &quickSchema{}
	sawType := false
	for k, v := range doc {
		switch {
		case k == "type":
			var typ string
			if json.Unmarshal(v, &typ) != nil || typ != "object" {
				return nil
			}
			sawType = true
		case k == "properties":
			var props map[string]map[string]json.RawMessage
			if json.Unmarshal(v, &props) != nil {
				return nil
			}
			for name, p := range props {
				typ := ""
				for pk, pv := range p {
					switch {
					case pk == "type":
						if json.Unmarshal(pv, &typ) != nil || !quickTypes[typ] {
							return nil
						}
					case !quickKeys[pk]:
						return nil
					}
				}
				if typ != "" { // "" = any type: nothing to check
					q.props = append(q.props, quickProp{name, typ})
				}
			}
		case k == "required":
			if json.Unmarshal(v, &q.required) != nil {
				return nil
			}
		case !quickKeys[k]:
			return nil
		}
	}
	if !sawType {
		return nil
	}
	return q
}

// accepts reports whether v certainly satisfies the schema.
func (q *quickSchema) accepts(v any) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, k := range q.required {
		if _, ok := obj[k]; !ok {
			return false
		}
	}
	for _, p := range q.props {
		if e, ok := obj[p.name]; ok && !quickType(e, p.typ) {
			return false
		}
	}
	return true
}

// quickType checks the types json.Unmarshal produces; anything else (a Go
// slice type, json.Number) is left to the full validator.
func quickType(v any, typ string) bool {
	switch v := v.(type) {
	case string:
		return typ == "string"
	case float64:
		return typ == "number" || typ == "integer" && v == math.Trunc(v) && !math.IsInf(v, 0)
	case bool:
		return typ == "boolean"
	case map[string]any:
		return typ == "object"
	case []any:
		return typ == "array"
	case nil:
		return typ == "null"
	default:
		return false
	}
}
