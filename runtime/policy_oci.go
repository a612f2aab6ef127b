package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/signature"
)

// OCIPolicy governs tools from OCI registries: which registries a client's
// register_tool may name, which signers are trusted, and where a valid
// signature is required. The operator's CLI (`tool pull`) may pull from
// any registry; the signature rules apply to it too.
type OCIPolicy struct {
	// Registries a client may name. Absent or empty: none.
	Registries []OCIRegistry `json:"registries,omitempty"`
	// RequireSignature requires every tool from a registry to be signed
	// by a trusted key or identity.
	RequireSignature bool `json:"require_signature,omitempty"`
	// TrustedKeys are public keys (PEM files, cosign.pub's format).
	TrustedKeys []OCITrustedKey `json:"trusted_keys,omitempty"`
	// TrustedRoot is a Sigstore trusted_root.json for keyless signatures
	// (certificate authorities, timestamp authorities, logs); nothing is
	// fetched at verification time.
	TrustedRoot string `json:"trusted_root,omitempty"`
	// TrustedIdentities are the keyless signers trusted under
	// TrustedRoot: the certificate's OIDC issuer and subject, exact.
	TrustedIdentities []OCITrustedIdentity `json:"trusted_identities,omitempty"`
	// Tools holds per-name rules. A rule requiring a signature applies to
	// every client registration of that name: an upload of bytes, which
	// carries no signature, is refused.
	Tools map[string]OCIRule `json:"tools,omitempty"`

	// trust is built from the files when the policy is loaded.
	trust *signature.Trust
	// fileHashes are the SHA-256 of each file named, for the policy hash.
	fileHashes map[string]string
}

// OCIRegistry is one registry a client may name.
type OCIRegistry struct {
	// Host is the registry's host, with its port if any: "ghcr.io",
	// "127.0.0.1:5000".
	Host string `json:"host"`
	// Repositories, when set, are the only repositories allowed: an entry
	// ending in "/" is a prefix ("acme/tools/"), any other is exact.
	Repositories []string `json:"repositories,omitempty"`
	OCIRule
}

// OCIRule is a signature rule: for a registry or for a tool name.
type OCIRule struct {
	// RequireSignature requires a signature by a trusted key or identity.
	RequireSignature bool `json:"require_signature,omitempty"`
	// Signers, when set, are the ids (of trusted_keys or
	// trusted_identities) whose signature counts here; and a signature is
	// then required.
	Signers []string `json:"signers,omitempty"`
}

// OCITrustedKey names a trusted public key.
type OCITrustedKey struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
}

// OCITrustedIdentity names a trusted keyless signer.
type OCITrustedIdentity struct {
	ID      string `json:"id"`
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// load checks o and reads the files it names, relative paths against
// base (the policy file's folder). Errors start with the field.
func (o *OCIPolicy) load(base string) error {
	o.fileHashes = map[string]string{}
	t := &signature.Trust{}
	ids := map[string]bool{}
	read := func(field, p string) ([]byte, error) {
		if p == "" {
			return nil, fmt.Errorf("%s: a file path is required", field)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		s := sha256.Sum256(b)
		o.fileHashes[field] = hex.EncodeToString(s[:])
		return b, nil
	}
	for i, k := range o.TrustedKeys {
		field := fmt.Sprintf("trusted_keys[%d]", i)
		if k.ID == "" || ids[k.ID] {
			return fmt.Errorf("%s.id: %q must be set and unique", field, k.ID)
		}
		ids[k.ID] = true
		b, err := read(field+".public_key", k.PublicKey)
		if err != nil {
			return err
		}
		key, err := signature.ParsePublicKey(k.ID, b)
		if err != nil {
			return fmt.Errorf("%s.public_key: %w", field, err)
		}
		t.Keys = append(t.Keys, key)
	}
	if o.TrustedRoot != "" {
		b, err := read("trusted_root", o.TrustedRoot)
		if err != nil {
			return err
		}
		if t.Root, err = signature.ParseTrustedRoot(b); err != nil {
			return fmt.Errorf("trusted_root: %w", err)
		}
	}
	for i, id := range o.TrustedIdentities {
		field := fmt.Sprintf("trusted_identities[%d]", i)
		if id.ID == "" || ids[id.ID] {
			return fmt.Errorf("%s.id: %q must be set and unique", field, id.ID)
		}
		ids[id.ID] = true
		if id.Issuer == "" || id.Subject == "" {
			return fmt.Errorf("%s: issuer and subject are both required", field)
		}
		if o.TrustedRoot == "" {
			return fmt.Errorf("%s: needs trusted_root", field)
		}
		t.Identities = append(t.Identities, signature.Identity{ID: id.ID, Issuer: id.Issuer, Subject: id.Subject})
	}
	checkSigners := func(field string, r OCIRule) error {
		for _, s := range r.Signers {
			if !ids[s] {
				return fmt.Errorf("%s.signers: %q is not the id of a trusted key or identity", field, s)
			}
		}
		return nil
	}
	for i, r := range o.Registries {
		field := fmt.Sprintf("registries[%d]", i)
		if r.Host == "" || strings.ContainsAny(r.Host, "/ @") {
			return fmt.Errorf("%s.host: %q must be a host or host:port", field, r.Host)
		}
		if err := checkSigners(field, r.OCIRule); err != nil {
			return err
		}
	}
	for name, r := range o.Tools {
		if err := checkSigners("tools."+name, r); err != nil {
			return err
		}
	}
	o.trust = t
	return nil
}

// hashDoc is what the policy hash covers of o: the section and the
// SHA-256 of every file it names, so a changed key changes the hash.
func (o *OCIPolicy) hashDoc() map[string]any {
	return map[string]any{"section": o, "files": o.fileHashes}
}

// registry returns the entry allowing a client to name ref, or an error
// saying why none does.
func (o *OCIPolicy) registry(ref oci.Reference) (*OCIRegistry, error) {
	if o == nil || len(o.Registries) == 0 {
		return nil, errors.New("the policy allows clients no registry (add it to oci.registries)")
	}
	var hosts []string
	for i := range o.Registries {
		r := &o.Registries[i]
		hosts = append(hosts, r.Host)
		if r.Host != ref.Registry {
			continue
		}
		if len(r.Repositories) == 0 {
			return r, nil
		}
		for _, p := range r.Repositories {
			if p == ref.Repository || (strings.HasSuffix(p, "/") && strings.HasPrefix(ref.Repository, p)) {
				return r, nil
			}
		}
		return nil, fmt.Errorf("repository %q of %s is not in oci.registries (allowed there: %s)", ref.Repository, r.Host, strings.Join(r.Repositories, ", "))
	}
	return nil, fmt.Errorf("registry %s is not in the policy's oci.registries (allowed: %s)", ref.Registry, strings.Join(hosts, ", "))
}

// signatureRule says whether a tool named name from reg (nil: the
// operator's pull or an upload of bytes) needs a signature, which signer
// ids count (nil: any trusted), and which fields of the policy say so.
func (p *Policy) signatureRule(name string, reg *OCIRegistry, fromRegistry bool) (required bool, signers []string, why []string) {
	o := p.OCI
	if o == nil {
		return false, nil, nil
	}
	if o.RequireSignature && fromRegistry {
		required = true
		why = append(why, "oci.require_signature")
	}
	narrow := func(field string, r OCIRule) {
		if r.RequireSignature || len(r.Signers) > 0 {
			required = true
			why = append(why, field)
		}
		if len(r.Signers) > 0 {
			if signers == nil {
				signers = slices.Clone(r.Signers)
			} else {
				signers = slices.DeleteFunc(signers, func(s string) bool { return !slices.Contains(r.Signers, s) })
			}
		}
	}
	if reg != nil {
		narrow("oci.registries["+reg.Host+"]", reg.OCIRule)
	}
	if r, ok := o.Tools[name]; ok {
		narrow("oci.tools."+name, r)
	}
	return required, signers, why
}

// checkSigned is gate C's signature check of one version: the policy's
// rules for its name (and, for a registry tool, the global rule) against
// the signer recorded when it was registered. Operator files and bundled
// tools are the operator's own and are not asked.
func (p *Policy) checkSigned(req tools.GrantRequest) error {
	fromRegistry := req.Provenance != nil && req.Provenance.Origin == store.OriginOCI
	if !fromRegistry && req.Source.Trusted() {
		return nil
	}
	var reg *OCIRegistry
	if fromRegistry && p.OCI != nil {
		if ref, err := oci.ParseReference(req.Provenance.Ref); err == nil {
			reg, _ = p.OCI.registry(ref)
		}
	}
	required, signers, why := p.signatureRule(req.Name, reg, fromRegistry)
	if !required {
		return nil
	}
	if !fromRegistry {
		return fmt.Errorf("%s requires a signature for %q, and an upload of bytes carries none: register it from a signed OCI artifact", strings.Join(why, " and "), req.Name)
	}
	if req.Provenance.SignerID == "" {
		return fmt.Errorf("%s requires a signature for %q, and %s was not signed by a trusted key or identity", strings.Join(why, " and "), req.Name, req.Provenance.Ref)
	}
	if signers != nil && !slices.Contains(signers, req.Provenance.SignerID) {
		return fmt.Errorf("%q is signed by %s, and %s accept only %s", req.Name, req.Provenance.Signer, strings.Join(why, " and "), strings.Join(signers, ", "))
	}
	return nil
}

// knows reports whether id names a trusted key or identity.
func (o *OCIPolicy) knows(id string) bool {
	for _, k := range o.TrustedKeys {
		if k.ID == id {
			return true
		}
	}
	for _, i := range o.TrustedIdentities {
		if i.ID == id {
			return true
		}
	}
	return false
}

func signerID(p *store.ToolProvenance) string {
	if p == nil {
		return ""
	}
	return p.SignerID
}

// signatureRuleAny reports whether any rule of the oci section requires a
// signature, and which fields do.
func (p *Policy) signatureRuleAny() (bool, []string, []string) {
	o := p.OCI
	var why []string
	if o.RequireSignature {
		why = append(why, "oci.require_signature")
	}
	for _, r := range o.Registries {
		if r.RequireSignature || len(r.Signers) > 0 {
			why = append(why, "oci.registries["+r.Host+"]")
		}
	}
	for name, r := range o.Tools {
		if r.RequireSignature || len(r.Signers) > 0 {
			why = append(why, "oci.tools."+name)
		}
	}
	sort.Strings(why)
	return len(why) > 0, nil, why
}
