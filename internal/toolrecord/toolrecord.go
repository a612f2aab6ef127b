// Package toolrecord holds the record of one registered tool version and
// the not-found sentinel, the two things the sandbox (package tools) and
// persistence (package store) both speak of. It lets tools read and write
// tool versions through its own small Store interface without importing
// store; store's ToolRecord, ToolSource, Source* and ErrNotFound are these
// same types and values under their store names.
//
// It imports the standard library only.
package toolrecord

import (
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned when a program, trace, step, envelope,
// idempotency key, secret, tool or module does not exist (or an
// idempotency key has expired). store.ErrNotFound and tools.ErrNotFound are
// this value.
var ErrNotFound = errors.New("not found")

// Source says who registered a tool version, and so who decides its
// powers (RATIONALE: .rationale/runtime.md "Why is trust bound to who
// registered a tool, not to its name?").
type Source string

// The sources of a tool version. The zero value "" is what a record
// written before sources existed decodes to; the store reads it as
// SourceOperator, the only way tools were trusted then.
const (
	// SourceBundled is a tool the server ships (wasm-tools/tools).
	SourceBundled Source = "bundled"
	// SourceOperator is a tool from the operator: the tools folder or the
	// CLI's `tool add`.
	SourceOperator Source = "operator"
	// SourceUpload is a tool a client uploaded (the MCP register_tool).
	SourceUpload Source = "upload"
)

// String implements fmt.Stringer.
func (s Source) String() string { return string(s) }

// Valid reports whether s is one of the three sources.
func (s Source) Valid() bool {
	return s == SourceBundled || s == SourceOperator || s == SourceUpload
}

// Trusted reports whether s is the operator's (bundled or operator): a
// tool whose manifest the operator wrote or shipped.
func (s Source) Trusted() bool { return s == SourceBundled || s == SourceOperator }

// Record is one registered version of a tool: its manifest and the
// content address of its WebAssembly module. Module bytes are stored once per
// hash and never deleted while a version refers to them, so an old trace
// can always name the exact code it ran.
type Record struct {
	// Name is the tool's name as programs call it.
	Name string `json:"name"`
	// ModuleSHA256 is the lowercase hex SHA-256 of the module bytes.
	ModuleSHA256 string `json:"module_sha256"`
	// ManifestSHA256 is the lowercase hex SHA-256 of the manifest's
	// canonical JSON (RFC 8785).
	ManifestSHA256 string `json:"manifest_sha256"`
	// Manifest is the tool's manifest as JSON; package tools defines it.
	Manifest json.RawMessage `json:"manifest"`
	// RegisteredAt is when this version was registered.
	RegisteredAt time.Time `json:"registered_at"`
	// Source is who registered this version. A record stored before
	// sources existed has none and reads as SourceOperator.
	Source Source `json:"source,omitempty"`
	// Grants maps each capability granted at registration to the
	// authority that granted it ("manifest", "policy", "upload-default",
	// "upload-policy"). The policy is asked again on every call; a step
	// record says what that call held.
	Grants map[string]string `json:"grants,omitempty"`
	// Provenance says where the module came from beyond Source: for a
	// tool from an OCI registry, the artifact by digest and the verified
	// signer. Absent for a tools-folder file, a CLI file or an upload of
	// bytes, and in records written before it existed.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Origins of a tool version, as Provenance.Origin says.
const (
	// OriginOCI is a module pulled from an OCI registry.
	OriginOCI = "oci"
)

// Provenance is where a tool version's module came from and who signed
// it, checked at registration. Every step that runs the version carries
// Ref and Signer into its record and envelope.
type Provenance struct {
	// Origin is OriginOCI.
	Origin string `json:"origin"`
	// Ref is the artifact by digest: oci://HOST/REPO@sha256:<hex>, the
	// digest of the manifest (or index) the reference resolved to.
	Ref string `json:"ref"`
	// Requested is the reference as named (by tag, say).
	Requested string `json:"requested,omitempty"`
	// Layout is how the artifact held the module: "nanovm", "wasm"
	// (the CNCF Wasm artifact) or "image" (plugin.wasm in a tar layer).
	Layout string `json:"layout,omitempty"`
	// Signer is who signed the artifact, as verified at registration:
	// "key <id> (sha256:<key id>)" or "certificate <id> (issuer …,
	// subject …)"; empty when it was not signed by anyone trusted.
	Signer string `json:"signer,omitempty"`
	// SignerID is the policy's id of that key or identity.
	SignerID string `json:"signer_id,omitempty"`
}

// EffectiveSource is r.Source, with a record from before sources existed
// read as SourceOperator.
func (r *Record) EffectiveSource() Source {
	if r.Source == "" {
		return SourceOperator
	}
	return r.Source
}
