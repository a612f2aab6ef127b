package signature

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	sigsig "github.com/sigstore/sigstore/pkg/signature"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnsigned is an artifact with no signature bundle at all.
	ErrUnsigned = errors.New("unsigned")
	// ErrUntrusted is an artifact whose bundles all fail: a signature by
	// a key or identity not trusted, over other bytes, or malformed.
	ErrUntrusted = errors.New("no trusted signature")
	// ErrKey is a key or trusted root that cannot be read.
	ErrKey = errors.New("invalid key")
)

// Key is a trusted public key.
type Key struct {
	// ID is the policy's name for it; a Signer names it.
	ID string
	// Public is the key.
	Public crypto.PublicKey
}

// Identity is a trusted keyless signer: the certificate's OIDC issuer and
// its subject (the SAN: an e-mail or a workflow URI), both exact.
type Identity struct {
	ID      string
	Issuer  string
	Subject string
}

// Trust is what a signature may be checked against.
type Trust struct {
	Keys []Key
	// Root is the trusted root (CAs, timestamp authorities, logs) for
	// keyless bundles; nil accepts none.
	Root root.TrustedMaterial
	// Identities are the keyless signers trusted under Root.
	Identities []Identity
}

// Signer is who a verified bundle says signed.
type Signer struct {
	// ID is the trusted key's or identity's policy name.
	ID string `json:"id"`
	// Kind is "key" or "certificate".
	Kind string `json:"kind"`
	// KeyID is "sha256:<hex>" of the key's PKIX encoding (key-based).
	KeyID string `json:"key_id,omitempty"`
	// Issuer and Subject are the certificate's identity (keyless).
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// String is "key <id> (<key id>)" or "certificate <id> (issuer …,
// subject …)": what the audit records.
func (s Signer) String() string {
	if s.Kind == "key" {
		return fmt.Sprintf("key %s (%s)", s.ID, s.KeyID)
	}
	return fmt.Sprintf("certificate %s (issuer %s, subject %s)", s.ID, s.Issuer, s.Subject)
}

// KeyID is "sha256:<hex>" of pub's PKIX encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w: %w", ErrKey, err)
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:]), nil
}

// ParsePublicKey reads a PEM public key (cosign.pub's format).
func ParsePublicKey(id string, pemBytes []byte) (Key, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return Key{}, fmt.Errorf("parse public key %q: %w: no PEM block", id, ErrKey)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("parse public key %q: %w: %w", id, ErrKey, err)
	}
	return Key{ID: id, Public: pub}, nil
}

// ParseTrustedRoot reads a Sigstore trusted_root.json.
func ParseTrustedRoot(b []byte) (root.TrustedMaterial, error) {
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("parse trusted root: %w: %w", ErrKey, err)
	}
	return tr, nil
}

// ParsePrivateKey reads an unencrypted PEM ECDSA private key (PKCS #8 or
// SEC 1), the key `tool push --sign` takes.
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, fmt.Errorf("parse private key: %w: no PEM block", ErrKey)
	}
	if strings.Contains(b.Type, "ENCRYPTED") {
		return nil, fmt.Errorf("parse private key: %w: encrypted keys are not supported; decrypt it first (openssl ec -in KEY -out PLAIN)", ErrKey)
	}
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		s, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse private key: %w: %T; want ECDSA", ErrKey, k)
		}
		return s, nil
	}
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w: %w", ErrKey, err)
	}
	return k, nil
}

// Verify returns the signer of the first of bundles that verifies over
// the artifact whose SHA-256 is digest (32 bytes). With no bundles it
// returns ErrUnsigned; when none verifies, ErrUntrusted saying why each
// failed.
func (t *Trust) Verify(bundles [][]byte, digest []byte) (Signer, error) {
	if len(bundles) == 0 {
		return Signer{}, fmt.Errorf("verify signature: %w: the artifact has no Sigstore bundle attached", ErrUnsigned)
	}
	var why []string
	for i, raw := range bundles {
		s, err := t.verifyOne(raw, digest)
		if err == nil {
			return s, nil
		}
		why = append(why, fmt.Sprintf("bundle %d: %v", i+1, err))
	}
	return Signer{}, fmt.Errorf("verify signature: %w: %s", ErrUntrusted, strings.Join(why, "; "))
}

func (t *Trust) verifyOne(raw, digest []byte) (Signer, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return Signer{}, fmt.Errorf("malformed bundle: %w", err)
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return Signer{}, fmt.Errorf("malformed bundle: %w", err)
	}
	artifact := verify.WithArtifactDigest("sha256", digest)
	if pk := vc.PublicKey(); pk != nil {
		if len(t.Keys) == 0 {
			return Signer{}, errors.New("signed with a key, and the policy trusts no key (oci.trusted_keys)")
		}
		for _, k := range t.Keys {
			v, err := sigsig.LoadVerifier(k.Public, crypto.SHA256)
			if err != nil {
				continue
			}
			mat := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
				return root.NewExpiringKey(v, timeZero, timeZero), nil
			})
			ver, err := verify.NewVerifier(mat, verify.WithNoObserverTimestamps())
			if err != nil {
				return Signer{}, err
			}
			if _, err := ver.Verify(&b, verify.NewPolicy(artifact, verify.WithKey())); err == nil {
				id, _ := KeyID(k.Public)
				return Signer{ID: k.ID, Kind: "key", KeyID: id}, nil
			}
		}
		return Signer{}, fmt.Errorf("signed by a key the policy does not trust (hint %q), or not over this artifact", jsonlimit.Excerpt(pk.Hint(), maxExcerpt))
	}
	if vc.Certificate() == nil {
		return Signer{}, errors.New("malformed bundle: neither a public key nor a certificate")
	}
	if t.Root == nil {
		return Signer{}, errors.New("signed with a certificate, and the policy names no trusted root (oci.trusted_root)")
	}
	if len(t.Identities) == 0 {
		return Signer{}, errors.New("signed with a certificate, and the policy trusts no identity (oci.trusted_identities)")
	}
	var opts []verify.VerifierOption
	tlogs := len(t.Root.RekorLogs()) > 0
	if tlogs || len(t.Root.TimestampingAuthorities()) > 0 {
		opts = append(opts, verify.WithObserverTimestamps(1))
		if tlogs {
			opts = append(opts, verify.WithTransparencyLog(1))
		}
	} else {
		// A private CA with no timestamp authority or log: its
		// certificates must be valid now.
		opts = append(opts, verify.WithCurrentTime())
	}
	ver, err := verify.NewVerifier(t.Root, opts...)
	if err != nil {
		return Signer{}, err
	}
	var last error
	for _, id := range t.Identities {
		ci, err := verify.NewShortCertificateIdentity(id.Issuer, "", id.Subject, "")
		if err != nil {
			return Signer{}, fmt.Errorf("trusted identity %q: %w", id.ID, err)
		}
		res, err := ver.Verify(&b, verify.NewPolicy(artifact, verify.WithCertificateIdentity(ci)))
		if err == nil {
			s := Signer{ID: id.ID, Kind: "certificate", Issuer: id.Issuer, Subject: id.Subject}
			if res.VerifiedIdentity != nil {
				s.Subject = res.VerifiedIdentity.SubjectAlternativeName.SubjectAlternativeName
			}
			return s, nil
		}
		last = err
	}
	c := vc.Certificate()
	san := ""
	if len(c.EmailAddresses) > 0 {
		san = c.EmailAddresses[0]
	} else if len(c.URIs) > 0 {
		san = c.URIs[0].String()
	}
	return Signer{}, fmt.Errorf("certificate for %q is not a trusted identity, or does not verify: %v", jsonlimit.Excerpt(san, maxExcerpt), last)
}

// maxExcerpt bounds how much of a key hint or a certificate's identity an
// error quotes.
const maxExcerpt = 120

// SignOptions configure Sign.
type SignOptions struct {
	// Key signs; ECDSA P-256 (cosign's default).
	Key crypto.Signer
	// Certificate, when set, is the DER certificate for Key (keyless
	// style); else the bundle names the key by its hint.
	Certificate []byte
	// Timestamp, when set, returns an RFC 3161 response over the
	// signature, added to the bundle.
	Timestamp func(sig []byte) ([]byte, error)
	// DSSE signs an in-toto statement naming the artifact's digest as
	// its subject (cosign's new bundle format) instead of the digest
	// itself; name is the statement's subject name.
	DSSE bool
	Name string
}

// Sign returns a Sigstore bundle (v0.3 JSON) signing the artifact whose
// bytes are artifact (for an OCI artifact: its manifest).
func Sign(ctx context.Context, opts SignOptions, artifact []byte) ([]byte, error) {
	ek, ok := opts.Key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("sign: %w: %T; want ECDSA", ErrKey, opts.Key)
	}
	kp, err := newKeypair(ek)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	var content sign.Content = &sign.PlainData{Data: artifact}
	if opts.DSSE {
		s := sha256.Sum256(artifact)
		st, _ := json.Marshal(map[string]any{
			"_type":         "https://in-toto.io/Statement/v1",
			"subject":       []any{map[string]any{"name": opts.Name, "digest": map[string]string{"sha256": hex.EncodeToString(s[:])}}},
			"predicateType": "https://sigstore.dev/cosign/sign/v1",
			"predicate":     map[string]any{},
		})
		content = &sign.DSSEData{Data: st, PayloadType: "application/vnd.in-toto+json"}
	}
	bo := sign.BundleOptions{Context: ctx}
	if opts.Certificate != nil {
		bo.CertificateProvider = certProvider(opts.Certificate)
	}
	pb, err := sign.Bundle(content, kp, bo)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if opts.Timestamp != nil {
		sig := signatureOf(pb)
		ts, err := opts.Timestamp(sig)
		if err != nil {
			return nil, fmt.Errorf("sign: timestamp: %w", err)
		}
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}},
		}
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return b.MarshalJSON()
}

func signatureOf(pb *protobundle.Bundle) []byte {
	if ms := pb.GetMessageSignature(); ms != nil {
		return ms.Signature
	}
	if env := pb.GetDsseEnvelope(); env != nil && len(env.Signatures) > 0 {
		return env.Signatures[0].Sig
	}
	return nil
}

type certProvider []byte

func (c certProvider) GetCertificate(context.Context, sign.Keypair, *sign.CertificateProviderOptions) ([]byte, error) {
	return bytes.Clone(c), nil
}

// keypair is sign.Keypair over an operator's ECDSA P-256 key.
type keypair struct {
	priv *ecdsa.PrivateKey
	hint []byte
}

func newKeypair(k *ecdsa.PrivateKey) (*keypair, error) {
	if k.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("%w: curve %s; want P-256", ErrKey, k.Curve.Params().Name)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(der)
	return &keypair{priv: k, hint: []byte(base64.StdEncoding.EncodeToString(s[:]))}, nil
}

func (k *keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}
func (k *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}
func (k *keypair) GetHint() []byte                { return k.hint }
func (k *keypair) GetKeyAlgorithm() string        { return "ECDSA" }
func (k *keypair) GetPublicKey() crypto.PublicKey { return k.priv.Public() }
func (k *keypair) GetPublicKeyPem() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
func (k *keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	s := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, s[:])
	if err != nil {
		return nil, nil, err
	}
	return sig, s[:], nil
}

// timeZero leaves a trusted key's validity unbounded: the policy, not the
// bundle, says which keys are trusted.
var timeZero = zeroTime()
