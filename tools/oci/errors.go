package oci

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrReference is a malformed oci:// reference.
	ErrReference = errors.New("invalid OCI reference")
	// ErrDigestMismatch is a manifest or blob whose bytes do not hash to
	// the digest that names it: tampered with in the registry or on the
	// way.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTooLarge is a manifest, blob, layer count or tar content above
	// its bound (Limits).
	ErrTooLarge = errors.New("above the limit")
	// ErrLayout is an artifact in none of the layouts this package reads,
	// or a malformed one.
	ErrLayout = errors.New("unsupported or malformed artifact")
	// ErrInsecure is a plain-HTTP registry the operator did not allow.
	ErrInsecure = errors.New("plain HTTP not allowed")
)
