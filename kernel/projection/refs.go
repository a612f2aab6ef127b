package projection

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// RefPrefix starts every vault reference: "vault://secret/<id>" where the id
// is one or more of [A-Za-z0-9._-].
const RefPrefix = "vault://secret/"

// PublicRefPrefix starts the public form of a live reference.
const PublicRefPrefix = "vault-ref:sha256:"

// Refs tells a projection about vault references. A nil Refs means there is
// no vault: every reference is unknown, with an empty salt and not erased.
type Refs interface {
	// Ref returns the salt of refID's public form and whether the secret has
	// been erased. A reference the vault does not know returns "", false.
	Ref(refID string) (salt string, tombstoned bool)
}

// PublicRef returns the public form of a reference: Tombstone when the secret
// has been erased, otherwise "vault-ref:sha256:" followed by the lowercase hex
// SHA-256 of refID+salt. The salt keeps the public form from confirming a
// guessed id; the hash still lets one trace tell two references apart.
func PublicRef(refID, salt string, tombstoned bool) string {
	if tombstoned {
		return Tombstone
	}
	h := sha256.New()
	h.Write([]byte(refID))
	h.Write([]byte(salt))
	var sum [sha256.Size]byte
	var out [len(PublicRefPrefix) + 2*sha256.Size]byte
	copy(out[:], PublicRefPrefix)
	hex.Encode(out[len(PublicRefPrefix):], h.Sum(sum[:0]))
	return string(out[:])
}

// IsRef reports whether s is exactly one vault reference and returns its id:
// IsRef("vault://secret/abc") is ("abc", true).
func IsRef(s string) (refID string, ok bool) {
	id, found := strings.CutPrefix(s, RefPrefix)
	if !found || id == "" || refIDLen(id) != len(id) {
		return "", false
	}
	return id, true
}

// refIDLen returns the length of the longest prefix of s made of id bytes.
func refIDLen(s string) int {
	for i := 0; i < len(s); i++ {
		if !isRefIDByte(s[i]) {
			return i
		}
	}
	return len(s)
}

func isRefIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// nextRef finds the first reference in s at or after from: the span of the
// whole reference and its id. ok is false when there is none.
func nextRef(s string, from int) (start, end int, id string, ok bool) {
	for from < len(s) {
		i := strings.Index(s[from:], RefPrefix)
		if i < 0 {
			return 0, 0, "", false
		}
		start = from + i
		idStart := start + len(RefPrefix)
		n := refIDLen(s[idStart:])
		if n > 0 {
			return start, idStart + n, s[idStart : idStart+n], true
		}
		from = idStart // "vault://secret/" with no id is plain text
	}
	return 0, 0, "", false
}
