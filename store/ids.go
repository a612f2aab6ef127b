package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the ids and keys a client passes (documented in the README's
// configuration section). Every one is refused, before anything is
// stored, with an error wrapping ErrInvalidID (ErrInvalidRef for secret
// ids) that names the limit and shows the value clipped (Clip).
const (
	// MaxIDBytes bounds program ids (save_as, program_id), trace and
	// trace ids and tool names: 1..256 bytes.
	MaxIDBytes = 256
	// MaxIdempotencyKeyBytes bounds idempotency keys: 1..255 bytes, as
	// Stripe's.
	MaxIdempotencyKeyBytes = 255
	// MaxSecretIDBytes bounds secret ids: 1..128 bytes of [A-Za-z0-9._-].
	MaxSecretIDBytes = 128
	// clipBytes is how much of a refused value an error or a log line
	// shows.
	clipBytes = 64
)

// CheckID reports whether id is acceptable as a what id (program, trace,
// tool, …): 1..MaxIDBytes bytes of valid UTF-8 without control characters
// (U+0000–U+001F, U+007F–U+009F). An error wraps ErrInvalidID.
func CheckID(what, id string) error {
	return checkText(what+" id", id, MaxIDBytes)
}

// CheckIdempotencyKey reports whether key is an acceptable idempotency
// key: 1..MaxIdempotencyKeyBytes bytes of valid UTF-8 without control
// characters. An error wraps ErrInvalidID.
func CheckIdempotencyKey(key string) error {
	return checkText("idempotency key", key, MaxIdempotencyKeyBytes)
}

// CheckSecretID reports whether id is an acceptable secret id: 1..128
// characters from [A-Za-z0-9._-]. An error wraps ErrInvalidRef.
func CheckSecretID(id string) error { return checkSecretID(id) }

func checkText(what, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidID, what)
	case len(s) > max:
		return fmt.Errorf("%w: %s %s is %d bytes, over the %d-byte limit", ErrInvalidID, what, Clip(s), len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %s is not valid UTF-8", ErrInvalidID, what, Clip(s))
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("%w: %s %s contains the control character %U", ErrInvalidID, what, Clip(s), r)
		}
	}
	return nil
}

// Clip quotes s for an error or a log line, cut to its first 64 bytes
// (on a character boundary) with its total length when longer: a client's
// value is never echoed whole.
func Clip(s string) string {
	if len(s) <= clipBytes {
		return fmt.Sprintf("%q", s)
	}
	cut := clipBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d bytes)", strings.ToValidUTF8(s[:cut], "\uFFFD"), len(s))
}
