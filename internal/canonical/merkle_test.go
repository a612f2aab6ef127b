package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Ensure MerkleRoot's bottom-up pairing with promotion equals RFC 6962's
// recursive definition for every size up to 70, including the edge cases.
func TestMerkleRootMatchesRFC6962(t *testing.T) {
	for n := 0; n <= 70; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			leaves := testLeaves(n)
			got, err := MerkleRoot(leaves)
			if err != nil {
				t.Fatal(err)
			}
			raw := make([][]byte, n)
			for i, l := range leaves {
				raw[i], _ = hex.DecodeString(l)
			}
			want := rfc6962(raw)
			if got != hex.EncodeToString(want) {
				t.Fatalf("MerkleRoot(%d leaves) = %s, want %x", n, got, want)
			}
		})
	}
}

// rfc6962 is the Merkle Tree Hash exactly as RFC 6962 section 2.1 writes it.
func rfc6962(d [][]byte) []byte {
	h := sha256.New()
	switch len(d) {
	case 0:
	case 1:
		h.Write([]byte{0})
		h.Write(d[0])
	default:
		k := 1
		for k*2 < len(d) {
			k *= 2
		}
		h.Write([]byte{1})
		h.Write(rfc6962(d[:k]))
		h.Write(rfc6962(d[k:]))
	}
	return h.Sum(nil)
}

// Ensure the documented fixed points and the properties that make the root a
// commitment: order matters, duplication is not promotion, case is ignored.
func TestMerkleRootProperties(t *testing.T) {
	l := testLeaves(4)
	root := func(leaves ...string) string {
		t.Helper()
		r, err := MerkleRoot(leaves)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	leafHash := func(s string) string {
		b, _ := hex.DecodeString(s)
		sum := sha256.Sum256(append([]byte{0}, b...))
		return hex.EncodeToString(sum[:])
	}
	tests := []struct {
		name     string
		got      string
		want     string
		mustDiff bool
	}{
		{name: "empty is SHA-256 of nothing", got: root(), want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{name: "one leaf is its leaf hash", got: root(l[0]), want: leafHash(l[0])},
		{name: "one leaf is not the leaf itself", got: root(l[0]), want: l[0], mustDiff: true},
		{name: "order matters", got: root(l[0], l[1]), want: root(l[1], l[0]), mustDiff: true},
		{name: "odd node not duplicated", got: root(l[0], l[1], l[2]), want: root(l[0], l[1], l[2], l[2]), mustDiff: true},
		{name: "leaf cannot pose as node", got: root(l[0], l[1]), want: root(root(l[0], l[1])), mustDiff: true},
		{name: "uppercase hex accepted", got: root(strings.ToUpper(l[0]), l[1]), want: root(l[0], l[1])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.got == tc.want) == tc.mustDiff {
				t.Fatalf("got %s, want (equal=%v) %s", tc.got, !tc.mustDiff, tc.want)
			}
		})
	}
}

// Ensure malformed leaves are rejected with ErrLeaf, naming the leaf.
func TestMerkleRootErrors(t *testing.T) {
	good := testLeaves(1)[0]
	tests := []struct {
		name string
		leaf string
	}{
		{name: "empty", leaf: ""},
		{name: "short", leaf: good[:62]},
		{name: "long", leaf: good + "00"},
		{name: "not hex", leaf: "zz" + good[2:]},
		{name: "0x prefix", leaf: "0x" + good[:62]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MerkleRoot([]string{good, tc.leaf})
			if !errors.Is(err, ErrLeaf) || !strings.Contains(err.Error(), "leaf 1") {
				t.Fatalf("MerkleRoot error = %v, want ErrLeaf naming leaf 1", err)
			}
		})
	}
}

func testLeaves(n int) []string {
	leaves := make([]string, n)
	for i := range leaves {
		sum := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
		leaves[i] = hex.EncodeToString(sum[:])
	}
	return leaves
}
