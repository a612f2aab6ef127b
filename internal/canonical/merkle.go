package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Domain-separation prefixes of RFC 6962 section 2.1, so that no leaf hash
// can be passed off as an interior node or the reverse.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// MerkleRoot returns the Merkle Tree Hash of RFC 6962 section 2.1, as
// lowercase hex, over leaves given as hex-encoded SHA-256 digests, in order.
//
// The construction: each leaf's 32 decoded bytes become the node
// SHA-256(0x00 || leaf); each level pairs its nodes left to right into
// SHA-256(0x01 || left || right); a level with an odd count promotes its last
// node unchanged to the next level (never duplicating it, which would let the
// lists [a b c] and [a b c c] share a root, as in CVE-2012-2459). This is
// exactly RFC 6962's recursive split at the largest power of two below n. The
// root of no leaves is SHA-256 of the empty string; the root of one leaf is
// its leaf node, not the leaf itself.
//
// Each leaf must be 64 hexadecimal digits; either letter case is accepted,
// since it is the decoded bytes that are hashed.
func MerkleRoot(leaves []string) (string, error) {
	if len(leaves) == 0 {
		return hexSum(sha256.Sum256(nil)), nil
	}
	// A tree of a few leaves is worked out on the stack.
	var small [16][sha256.Size]byte
	level := small[:0]
	if len(leaves) > len(small) {
		level = make([][sha256.Size]byte, 0, len(leaves))
	}
	level = level[:len(leaves)]
	var buf [1 + 2*sha256.Size]byte
	for i, l := range leaves {
		if len(l) != 2*sha256.Size {
			return "", fmt.Errorf("merkle root: leaf %d has %d characters, want 64: %w", i, len(l), ErrLeaf)
		}
		buf[0] = leafPrefix
		if _, err := hex.Decode(buf[1:1+sha256.Size], []byte(l)); err != nil {
			return "", fmt.Errorf("merkle root: leaf %d: %w: %w", i, ErrLeaf, err)
		}
		level[i] = sha256.Sum256(buf[:1+sha256.Size])
	}
	buf[0] = nodePrefix
	for n := len(level); n > 1; {
		next := 0
		for i := 0; i+1 < n; i += 2 {
			copy(buf[1:], level[i][:])
			copy(buf[1+sha256.Size:], level[i+1][:])
			level[next] = sha256.Sum256(buf[:])
			next++
		}
		if n%2 == 1 {
			level[next] = level[n-1]
			next++
		}
		n = next
	}
	return hexSum(level[0]), nil
}
