// Package signaturetest makes keyless signing material for tests: a
// virtual Sigstore (its own CA and timestamp authority, made for the test)
// and the trusted root file that names them, so a keyless signature
// verifies offline as one from the public Sigstore would.
package signaturetest

import (
	"context"
	"crypto/ecdsa"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/nanovm/nano-vm-mcp/tools/signature"
)

// Sigstore is a virtual Sigstore made for one test.
type Sigstore struct {
	*ca.VirtualSigstore
	// Root is the trusted root file (JSON) naming the CA and the
	// timestamp authority.
	Root []byte
}

// New makes a virtual Sigstore and its trusted root, failing t if it
// cannot.
func New(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, vs.TimestampingAuthorities(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rootJSON, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &Sigstore{VirtualSigstore: vs, Root: rootJSON}
}

// Sign signs artifact keyless: with a fresh leaf certificate the CA
// issues to subject as issuer's identity, timestamped by the authority.
// It returns the Sigstore bundle.
func (s *Sigstore) Sign(t testing.TB, issuer, subject string, artifact []byte) []byte {
	t.Helper()
	cert, priv, err := s.GenerateLeafCert(subject, issuer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signature.Sign(context.Background(), signature.SignOptions{Key: priv.(*ecdsa.PrivateKey), Certificate: cert.Raw, Timestamp: s.TimestampResponse}, artifact)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
