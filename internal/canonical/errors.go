package canonical

import "errors"

// ErrNumber is returned when a number has no canonical form: NaN, ±Inf, a raw
// JSON number outside the float64 range, or a Go integer that a float64
// cannot represent exactly.
var ErrNumber = errors.New("number not representable in canonical JSON")

// ErrUTF8 is returned when a string or object name is not valid UTF-8 or, in
// raw JSON, escapes a lone UTF-16 surrogate.
var ErrUTF8 = errors.New("invalid UTF-8")

// ErrDuplicateKey is returned when an object in raw JSON (a json.RawMessage or
// the output of encoding/json) names the same member twice, after unescaping.
var ErrDuplicateKey = errors.New("duplicate object key")

// ErrSyntax is returned when raw JSON is not well-formed JSON text (RFC 8259).
var ErrSyntax = errors.New("invalid JSON")

// ErrDepth is returned when a value nests deeper than MaxDepth, which also
// stops a self-referencing map from recursing forever.
var ErrDepth = errors.New("nesting too deep")

// ErrLeaf is returned by MerkleRoot when a leaf is not 64 hexadecimal digits.
var ErrLeaf = errors.New("invalid Merkle leaf")
