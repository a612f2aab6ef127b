package checkpoint

import (
	"testing"
)

// FuzzParseCheckpoint ensures Parse never panics, accepts only the
// canonical text (what it accepts, Text writes back byte for byte), and
// that Open never returns a checkpoint for a note it did not see signed.
func FuzzParseCheckpoint(f *testing.F) {
	s, v := newKeyF(f)
	c := Checkpoint{Origin: "nano-vm-mcp/a.db", Size: 42, Hash: testHash}
	text, _ := c.Text()
	msg, _ := s.Sign(c)
	f.Add(text)
	f.Add(string(msg))
	f.Add("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("o\n01\nAAAA\n\n\u2014 k AAAA\n")
	f.Fuzz(func(t *testing.T, in string) {
		if got, err := Parse(in); err == nil {
			back, err := got.Text()
			if err != nil || back != in {
				t.Fatalf("Parse accepted %q as %+v, Text gives %q, %v", in, got, back, err)
			}
		}
		if got, _, err := v.Open([]byte(in), c.Origin); err == nil {
			// The fuzzer cannot forge an Ed25519 signature: an opened note
			// is the seed we signed.
			if in != string(msg) || got != c {
				t.Fatalf("Open accepted %q as %+v", in, got)
			}
		}
	})
}

func newKeyF(f *testing.F) (*Signer, *Verifier) {
	skey, vkey, err := GenerateKey("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	return s, v
}
