package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testHash = "3f2a0c1d4e5b6a798897a6b5c4d3e2f10f1e2d3c4b5a69788796a5b4c3d2e1f0"

func newKey(t *testing.T, name string) (*Signer, *Verifier) {
	t.Helper()
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey {
		t.Fatalf("derived verifier key %q, GenerateKey gave %q", s.VerifierKey(), vkey)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestTextRoundTrip ensures Text writes the C2SP tlog-checkpoint shape and
// Parse reads exactly what Text wrote.
func TestTextRoundTrip(t *testing.T) {
	c := Checkpoint{Origin: "nano-vm-mcp/audit.db", Size: 1234, Hash: testHash}
	text, err := c.Text()
	if err != nil {
		t.Fatal(err)
	}
	want := "nano-vm-mcp/audit.db\n1234\nPyoMHU5banmIl6a1xNPi8Q8eLTxLWml4h5altMPS4fA=\n"
	if text != want {
		t.Fatalf("Text = %q, want %q", text, want)
	}
	got, err := Parse(text)
	if err != nil || got != c {
		t.Fatalf("Parse(Text) = %+v, %v; want %+v", got, err, c)
	}
}

// TestParseRefuses ensures every text but the canonical form is refused
// as malformed, naming what is wrong.
func TestParseRefuses(t *testing.T) {
	const b64 = "PyoMHU5banmIl6a1xNPi8Q8eLTxLWml4h5altMPS4fA="
	tests := []struct {
		name, text, want string
	}{
		{name: "empty", text: "", want: "newline"},
		{name: "no final newline", text: "o\n1\n" + b64, want: "newline"},
		{name: "two lines", text: "o\n1\n", want: "3 lines"},
		{name: "extension line", text: "o\n1\n" + b64 + "\nextra\n", want: "3 lines"},
		{name: "empty origin", text: "\n1\n" + b64 + "\n", want: "empty origin"},
		{name: "origin with spaces around", text: " o\n1\n" + b64 + "\n", want: "trimmed"},
		{name: "origin with a tab", text: "o\tx\n1\n" + b64 + "\n", want: "control"},
		{name: "origin too long", text: strings.Repeat("o", MaxOriginLength+1) + "\n1\n" + b64 + "\n", want: "limit"},
		{name: "size zero", text: "o\n0\n" + b64 + "\n", want: "positive decimal"},
		{name: "leading zero", text: "o\n01\n" + b64 + "\n", want: "leading zeros"},
		{name: "negative size", text: "o\n-1\n" + b64 + "\n", want: "positive decimal"},
		{name: "plus size", text: "o\n+1\n" + b64 + "\n", want: "positive decimal"},
		{name: "size overflow", text: "o\n18446744073709551616\n" + b64 + "\n", want: "out of range"},
		{name: "hex hash", text: "o\n1\n" + testHash + "\n", want: "base64"},
		{name: "unpadded hash", text: "o\n1\n" + strings.TrimSuffix(b64, "=") + "\n", want: "base64"},
		{name: "short hash", text: "o\n1\nAAAA\n", want: "base64"},
		{name: "url base64", text: "o\n1\n" + strings.Repeat("_", 43) + "=\n", want: "base64"},
		{name: "non-canonical padding bits", text: "o\n1\n" + strings.TrimSuffix(b64, "A=") + "B=\n", want: "base64"},
		{name: "too big", text: strings.Repeat("x", MaxNoteSize+1), want: "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.text)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %+v, %v; want ErrMalformed naming %q", c, err, tc.want)
			}
		})
	}
}

// TestSignOpen ensures a signed checkpoint opens with its verifier key,
// and that a tampered text, another key, a forged signature and another
// origin are each refused with their own error.
func TestSignOpen(t *testing.T) {
	s, v := newKey(t, "audit-test")
	_, other := newKey(t, "audit-test") // same name, another key
	c := Checkpoint{Origin: "nano-vm-mcp/a.db", Size: 7, Hash: testHash}
	msg, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(msg, []byte("nano-vm-mcp/a.db\n7\n")) || !bytes.Contains(msg, []byte("\n\n\u2014 audit-test ")) {
		t.Fatalf("signed note:\n%s", msg)
	}
	got, by, err := v.Open(msg, c.Origin)
	if err != nil || got != c || by != "audit-test" {
		t.Fatalf("Open = %+v, %q, %v", got, by, err)
	}
	// Several keys: a checkpoint signed with either opens.
	s2, _ := newKey(t, "audit-next")
	both, err := NewVerifier(s.VerifierKey(), s2.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	msg2, _ := s2.Sign(c)
	for _, m := range [][]byte{msg, msg2} {
		if _, _, err := both.Open(m, c.Origin); err != nil {
			t.Errorf("Open with two keys: %v", err)
		}
	}

	tampered := bytes.Replace(msg, []byte("\n7\n"), []byte("\n8\n"), 1)
	// Flip a bit of the signature itself (past its 4-byte key hash).
	lastSig := bytes.LastIndexByte(msg[:len(msg)-1], ' ') + 1
	sig, err := base64.StdEncoding.DecodeString(string(msg[lastSig : len(msg)-1]))
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	forged := append(append([]byte{}, msg[:lastSig]...), base64.StdEncoding.EncodeToString(sig)+"\n"...)
	wrongOrigin, _ := s.Sign(Checkpoint{Origin: "nano-vm-mcp/b.db", Size: 7, Hash: testHash})
	notSigned := []byte("nano-vm-mcp/a.db\n7\nPyoMHU5banmIl6a1xNPi8Q8eLTxLWml4h5altMPS4fA=\n")
	tests := []struct {
		name string
		v    *Verifier
		msg  []byte
		want error
	}{
		{name: "tampered text", v: v, msg: tampered, want: ErrBadSignature},
		{name: "forged signature", v: v, msg: forged, want: ErrBadSignature},
		{name: "another key of the same name", v: other, msg: msg, want: ErrUnverified},
		{name: "wrong origin", v: v, msg: wrongOrigin, want: ErrWrongOrigin},
		{name: "no signature", v: v, msg: notSigned, want: ErrMalformed},
		{name: "garbage", v: v, msg: []byte("\x00\xff"), want: ErrMalformed},
		{name: "too big", v: v, msg: bytes.Repeat([]byte("a"), MaxNoteSize+1), want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := tc.v.Open(tc.msg, c.Origin)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %+v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestKeys ensures bad keys are refused without echoing a signer key, and
// that a verifier key file may hold several keys and comments but never a
// signer key.
func TestKeys(t *testing.T) {
	if _, _, err := GenerateKey("has space"); !errors.Is(err, ErrKey) {
		t.Errorf("GenerateKey(has space) = %v", err)
	}
	skey, vkey, _ := GenerateKey("k")
	if _, err := NewSigner(vkey); !errors.Is(err, ErrKey) {
		t.Errorf("NewSigner(verifier key) = %v", err)
	}
	bad := strings.TrimSuffix(skey, "A") + "B!"
	if _, err := NewSigner(bad); !errors.Is(err, ErrKey) || strings.Contains(err.Error(), bad) {
		t.Errorf("NewSigner(bad) = %v (must not echo the key)", err)
	}
	if _, err := NewVerifier(); !errors.Is(err, ErrKey) {
		t.Errorf("NewVerifier() = %v", err)
	}
	if _, err := NewVerifier("nope"); !errors.Is(err, ErrKey) {
		t.Errorf("NewVerifier(nope) = %v", err)
	}
	keys, err := ParseVerifierKeys([]byte("# current\n" + vkey + "\n\n  " + vkey + "  \n"))
	if err != nil || len(keys) != 2 || keys[1] != vkey {
		t.Errorf("ParseVerifierKeys = %q, %v", keys, err)
	}
	if _, err := ParseVerifierKeys([]byte(skey + "\n")); !errors.Is(err, ErrKey) || strings.Contains(err.Error(), skey) {
		t.Errorf("ParseVerifierKeys(signer key) = %v", err)
	}
	if _, err := ParseVerifierKeys([]byte("# nothing\n")); !errors.Is(err, ErrKey) {
		t.Errorf("ParseVerifierKeys(empty) = %v", err)
	}
}

// TestKeyFiles ensures a signer key file group or others can read is
// refused, a key file is never overwritten, and WriteFile replaces a
// checkpoint leaving no temporary file behind.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, _ := GenerateKey("k")
	sp := filepath.Join(dir, "k.key")
	if err := CreateFile(sp, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(sp, []byte("x"), 0o600); err == nil {
		t.Error("CreateFile replaced an existing key file")
	}
	s, err := ReadSignerKeyFile(sp)
	if err != nil || s.VerifierKey() != vkey {
		t.Fatalf("ReadSignerKeyFile = %v", err)
	}
	if err := os.Chmod(sp, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSignerKeyFile(sp); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadSignerKeyFile(0640) = %v", err)
	}
	vp := filepath.Join(dir, "k.pub")
	if err := WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if keys, err := ReadVerifierKeyFile(vp); err != nil || keys[0] != vkey {
		t.Errorf("ReadVerifierKeyFile = %q, %v", keys, err)
	}
	cp := filepath.Join(dir, "head.checkpoint")
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteFile(cp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := ReadFile(cp); err != nil || string(b) != content {
			t.Errorf("ReadFile = %q, %v; want %q", b, err, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("folder holds %d entries, want 3 (no temporary file left)", len(entries))
	}
	if err := os.WriteFile(cp, bytes.Repeat([]byte("x"), MaxNoteSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(cp); !errors.Is(err, ErrMalformed) {
		t.Errorf("ReadFile(oversized) = %v", err)
	}
}

// BenchmarkSignOpen measures signing a checkpoint and opening it again.
func BenchmarkSignOpen(b *testing.B) {
	skey, vkey, _ := GenerateKey("bench")
	s, _ := NewSigner(skey)
	v, _ := NewVerifier(vkey)
	c := Checkpoint{Origin: "nano-vm-mcp/a.db", Size: 1 << 20, Hash: testHash}
	msg, _ := s.Sign(c)
	b.Run("Sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Sign(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := v.Open(msg, c.Origin); err != nil {
				b.Fatal(err)
			}
		}
	})
}
