package runtime

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

// TestRandomPool reads the trace id generator's pool in sizes that cross
// its refills and checks no 16-byte block repeats and that the pool keeps
// nothing it handed out.
func TestRandomPool(t *testing.T) {
	var p randomPool
	seen := map[[16]byte]bool{}
	for i := range 200 {
		var b [16]byte
		n := 16
		if i%7 == 0 {
			n = 5 // an odd size, so reads straddle the pool's end
		}
		if got, err := p.Read(b[:n]); err != nil || got != n {
			t.Fatalf("Read(%d) = %d, %v", n, got, err)
		}
		if n == 16 {
			if seen[b] {
				t.Fatalf("block %x handed out twice", b)
			}
			seen[b] = true
		}
		if start := len(p.buf) - p.left; !bytes.Equal(p.buf[:start], make([]byte, start)) {
			t.Fatalf("the pool keeps bytes it handed out")
		}
	}
	big := make([]byte, 3*len(p.buf)+1)
	if n, err := p.Read(big); err != nil || n != len(big) {
		t.Fatalf("Read(%d) = %d, %v", len(big), n, err)
	}
}

// TestTraceIDs checks trace ids are distinct version 7 UUIDs.
func TestTraceIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id := uuidV7{}.NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %q: version %v variant %v, %v", id, u.Version(), u.Variant(), err)
		}
		if seen[id] {
			t.Fatalf("id %s made twice", id)
		}
		seen[id] = true
	}
}
