package signature_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/signature"
	"github.com/nanovm/nano-vm-mcp/tools/signature/signaturetest"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func digestOf(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestKeyBased signs a manifest with a fresh key as `tool push --sign`
// does and as cosign's new bundle format does (DSSE), and verifies both
// offline; another key, other bytes or no bundle are refused, saying why.
func TestKeyBased(t *testing.T) {
	ctx := context.Background()
	artifact := []byte(`{"schemaVersion":2}`)
	good, other := newKey(t), newKey(t)
	trusted, err := signature.ParsePublicKey("release", pubPEM(t, good))
	if err != nil {
		t.Fatal(err)
	}
	trust := &signature.Trust{Keys: []signature.Key{trusted}}
	for _, dsse := range []bool{false, true} {
		b, err := signature.Sign(ctx, signature.SignOptions{Key: good, DSSE: dsse, Name: "oci://x/y"}, artifact)
		if err != nil {
			t.Fatal(err)
		}
		s, err := trust.Verify([][]byte{b}, digestOf(artifact))
		if err != nil {
			t.Fatalf("dsse=%v: %v", dsse, err)
		}
		wantID, _ := signature.KeyID(good.Public())
		if s.ID != "release" || s.Kind != "key" || s.KeyID != wantID || !strings.Contains(s.String(), "release") {
			t.Fatalf("signer %+v", s)
		}
		if _, err := trust.Verify([][]byte{b}, digestOf([]byte("other bytes"))); !errors.Is(err, signature.ErrUntrusted) {
			t.Fatalf("dsse=%v: over other bytes: %v", dsse, err)
		}
		bad, _ := signature.Sign(ctx, signature.SignOptions{Key: other, DSSE: dsse}, artifact)
		if _, err := trust.Verify([][]byte{bad}, digestOf(artifact)); !errors.Is(err, signature.ErrUntrusted) || !strings.Contains(err.Error(), "does not trust") {
			t.Fatalf("dsse=%v: untrusted key: %v", dsse, err)
		}
		// One good bundle among bad ones is enough.
		if _, err := trust.Verify([][]byte{[]byte("{}"), bad, b}, digestOf(artifact)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := trust.Verify(nil, digestOf(artifact)); !errors.Is(err, signature.ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := trust.Verify([][]byte{[]byte("not json")}, digestOf(artifact)); !errors.Is(err, signature.ErrUntrusted) || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed: %v", err)
	}
}

// TestKeyless signs with a certificate from a virtual Sigstore (its own
// CA and timestamp authority, made for the test) and verifies against a
// trusted root file written from it: the identity must match, and the
// timestamp must come from the root's authority.
func TestKeyless(t *testing.T) {
	vs := signaturetest.New(t)
	mat, err := signature.ParseTrustedRoot(vs.Root)
	if err != nil {
		t.Fatal(err)
	}
	const issuer, subject = "https://issuer.example", "release@example.com"
	artifact := []byte(`{"schemaVersion":2,"x":1}`)
	b := vs.Sign(t, issuer, subject, artifact)
	trust := &signature.Trust{Root: mat, Identities: []signature.Identity{{ID: "ci", Issuer: issuer, Subject: subject}}}
	s, err := trust.Verify([][]byte{b}, digestOf(artifact))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != "certificate" || s.ID != "ci" || s.Subject != subject || s.Issuer != issuer {
		t.Fatalf("signer %+v", s)
	}
	for name, tc := range map[string]*signature.Trust{
		"other subject": {Root: mat, Identities: []signature.Identity{{ID: "ci", Issuer: issuer, Subject: "mallory@example.com"}}},
		"other issuer":  {Root: mat, Identities: []signature.Identity{{ID: "ci", Issuer: "https://evil", Subject: subject}}},
		"no identity":   {Root: mat},
		"no root":       {Identities: []signature.Identity{{ID: "ci", Issuer: issuer, Subject: subject}}},
	} {
		if _, err := tc.Verify([][]byte{b}, digestOf(artifact)); !errors.Is(err, signature.ErrUntrusted) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another CA's certificate does not chain to the root.
	b2 := signaturetest.New(t).Sign(t, issuer, subject, artifact)
	if _, err := trust.Verify([][]byte{b2}, digestOf(artifact)); !errors.Is(err, signature.ErrUntrusted) {
		t.Fatalf("other CA: %v", err)
	}
}
