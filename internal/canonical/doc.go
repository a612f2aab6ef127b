// Package canonical encodes JSON data in the one canonical form every hash in
// nano-vm-mcp is taken over: the JSON Canonicalization Scheme of RFC 8785
// (JCS), hashed with SHA-256, plus the Merkle root used to commit to a list of
// such hashes. The choices behind it (number policy, key order, Merkle
// construction) are explained in RATIONALE.md, "Canonical JSON, hashing and
// projections".
//
// # Invariants
//
//   - Equal JSON data always encodes to identical bytes: object members are
//     sorted by the UTF-16 code units of their names, strings use the minimal
//     JCS escaping, numbers use the ECMAScript Number.prototype.toString form.
//   - Encoding is idempotent: canonicalizing canonical output (as a
//     json.RawMessage) returns it unchanged.
//   - Anything that could make two different values share an encoding is an
//     error rather than a silent rewrite: NaN and ±Inf, Go integers a float64
//     cannot hold exactly, invalid UTF-8, lone surrogates, and duplicate object
//     names in raw JSON.
//
// # Caveats
//
//   - Like every JCS implementation, JSON numbers are IEEE 754 doubles: the raw
//     JSON number 9007199254740993 canonicalizes to 9007199254740992. Keep
//     large identifiers in strings.
//   - Values of types not listed on [Append] go through encoding/json first, so
//     they inherit its conventions (struct tags, MarshalJSON, and invalid UTF-8
//     in their strings replaced by U+FFFD).
package canonical
