package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// Policy is the operator's PolicySnapshot: which tools may run, with which
// capabilities, which secrets and which state keys each may use, and what an
// uploaded tool may have. It is loaded once at start-up and frozen: a
// client cannot change it, and every envelope records its hash.
//
// Grants follow who registered a tool, never only its name (RATIONALE:
// .rationale/runtime.md "Why is trust bound to who registered a tool, not
// to its name?"): tool_capabilities, tool_state_keys and tool_secrets
// grant to the operator's tools (the tools folder, the CLI, the bundled
// ones); uploads grants to tools clients registered.
type Policy struct {
	// PolicyID names the policy.
	PolicyID string `json:"policy_id"`
	// Version is the operator's version of the policy.
	Version string `json:"version"`
	// ToolCapabilities maps each allowed operator tool to the capabilities
	// it may hold. An operator tool not listed may not run. A tool's
	// effective capabilities are the intersection of this list and its
	// manifest's. It never grants to an upload of the same name.
	ToolCapabilities map[string][]string `json:"tool_capabilities"`
	// ToolStateKeys maps an operator tool to the top-level state keys its
	// TOOL projection may see beyond its args; absent means none.
	ToolStateKeys map[string][]string `json:"tool_state_keys,omitempty"`
	// ToolSecrets maps an operator tool to the secret ids it may resolve
	// through nanovm.secret_get, or ["*"] for any; a tool not listed may
	// resolve none. Either way a call resolves only refs that appear in its
	// own arguments.
	ToolSecrets map[string][]string `json:"tool_secrets,omitempty"`
	// Uploads governs the tools clients upload (register_tool). Absent, no
	// uploaded tool may be registered or run under this policy.
	Uploads *UploadPolicy `json:"uploads,omitempty"`
	// OCI governs tools from OCI registries: the registries clients may
	// name, trusted signers, and where a signature is required. Absent,
	// clients may name no registry and nothing requires a signature.
	OCI *OCIPolicy `json:"oci,omitempty"`

	// permissive is set for the default policy used when the operator
	// gave none: every operator tool with its manifest's capabilities.
	permissive bool
	hash       string
}

// UploadPolicy is what uploaded tools may have.
type UploadPolicy struct {
	// Default is the grant of an upload with no entry in Tools. Absent, it
	// is DefaultUploadGrant: nanovm:log, no mounts, hosts or secrets.
	Default *UploadGrant `json:"default,omitempty"`
	// Tools maps an upload's name to its grant.
	Tools map[string]UploadGrant `json:"tools,omitempty"`
}

// UploadGrant is what one uploaded tool may have. An upload's manifest may
// ask for less, never more: a capability, allowed host or mount outside it
// is refused at registration, naming the field.
type UploadGrant struct {
	// Capabilities the upload may hold; wasi:stdio is implied.
	Capabilities []string `json:"capabilities"`
	// AllowedHosts bound the manifest's allowed_hosts (needs nanovm:http):
	// each must be listed, or lie under a listed "*.domain".
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	// Mounts bound the manifest's mounts (needs wasi:fs): each must have a
	// listed host_path or lie beneath one, read-only if that one is.
	Mounts []tools.Mount `json:"mounts,omitempty"`
	// Secrets are the secret ids the upload may resolve, ["*"] for any
	// (needs nanovm:secrets).
	Secrets []string `json:"secrets,omitempty"`
	// StateKeys are the top-level state keys its TOOL projection may see.
	StateKeys []string `json:"state_keys,omitempty"`
	// ReplaceOperator lets an upload of this name replace a bundled or
	// operator tool of the same name. Per-name entries only.
	ReplaceOperator bool `json:"replace_operator,omitempty"`
	// ModuleSHA256, when set, pins the entry to one module (lowercase hex
	// SHA-256): an upload of other code gets the default instead.
	ModuleSHA256 string `json:"module_sha256,omitempty"`
	// SignedBy, when set, pins the entry to tools registered from an OCI
	// artifact signed by one of these trusted keys or identities (their
	// oci ids): any other upload of the name gets the default instead.
	SignedBy []string `json:"signed_by,omitempty"`
}

// DefaultUploadGrant is the grant of an upload no policy entry names:
// tools.DefaultUploadCapabilities (nanovm:log; wasi:stdio is implied), no
// mounts, no hosts, no secrets, no state.
func DefaultUploadGrant() UploadGrant {
	return UploadGrant{Capabilities: tools.DefaultUploadCapabilities()}
}

// DefaultPolicy is the policy used when no policy file is configured: every
// bundled and operator tool may run with the capabilities its manifest asks
// for and resolve the secrets its calls are given; an uploaded tool gets
// DefaultUploadGrant; no tool sees state beyond its args. The server logs a
// warning when it runs under it.
func DefaultPolicy() *Policy {
	p := &Policy{PolicyID: "default-allow-registered", Version: "2", ToolCapabilities: map[string][]string{}, Uploads: &UploadPolicy{}, permissive: true}
	p.normalize()
	return p
}

// LoadPolicy reads a policy file, JSON or YAML (by extension: .yaml and
// .yml are YAML, anything else JSON). Unknown fields are errors.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".yaml" || ext == ".yml" {
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", path, err)
		}
		if data, err = json.Marshal(doc); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", path, err)
		}
	}
	p, err := parsePolicy(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes and validates a JSON policy. Files it names (the
// oci section's keys and trusted root) are read relative to the working
// directory; LoadPolicy reads them relative to the policy file.
func ParsePolicy(data []byte) (*Policy, error) {
	return parsePolicy(data, ".")
}

func parsePolicy(data []byte, base string) (*Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	if p.PolicyID == "" {
		return nil, errors.New("parse policy: policy_id is required")
	}
	if p.ToolCapabilities == nil {
		return nil, errors.New("parse policy: tool_capabilities is required (use {} to allow no tool)")
	}
	for tool := range p.ToolStateKeys {
		if _, ok := p.ToolCapabilities[tool]; !ok {
			return nil, fmt.Errorf("parse policy: tool_state_keys names %q, which tool_capabilities does not allow", tool)
		}
	}
	for tool, ids := range p.ToolSecrets {
		if _, ok := p.ToolCapabilities[tool]; !ok {
			return nil, fmt.Errorf("parse policy: tool_secrets names %q, which tool_capabilities does not allow", tool)
		}
		if err := checkSecretIDs(ids); err != nil {
			return nil, fmt.Errorf("parse policy: tool_secrets.%s: %w", tool, err)
		}
	}
	if u := p.Uploads; u != nil {
		if u.Default != nil {
			if u.Default.ReplaceOperator || u.Default.ModuleSHA256 != "" || len(u.Default.SignedBy) > 0 {
				return nil, errors.New("parse policy: uploads.default: replace_operator and module_sha256 belong in a per-name entry (uploads.tools.<name>), as does signed_by")
			}
			if err := u.Default.check(); err != nil {
				return nil, fmt.Errorf("parse policy: uploads.default.%w", err)
			}
		}
		for name, g := range u.Tools {
			if err := g.check(); err != nil {
				return nil, fmt.Errorf("parse policy: uploads.tools.%s.%w", name, err)
			}
		}
	}
	if p.OCI != nil {
		if err := p.OCI.load(base); err != nil {
			return nil, fmt.Errorf("parse policy: oci.%w", err)
		}
	}
	if u := p.Uploads; u != nil {
		for name, g := range u.Tools {
			for _, s := range g.SignedBy {
				if p.OCI == nil || !p.OCI.knows(s) {
					return nil, fmt.Errorf("parse policy: uploads.tools.%s.signed_by: %q is not the id of an oci trusted key or identity", name, s)
				}
			}
		}
	}
	p.normalize()
	return &p, nil
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// check validates one upload grant; its errors start with the field name.
func (g *UploadGrant) check() error {
	has := map[string]bool{}
	for _, c := range g.Capabilities {
		if !tools.Capability(c).Valid() {
			return fmt.Errorf("capabilities: unknown capability %q (known: %v)", c, tools.Capabilities())
		}
		has[c] = true
	}
	if len(g.AllowedHosts) > 0 && !has[string(tools.CapHTTP)] {
		return fmt.Errorf("allowed_hosts: needs capability %s", tools.CapHTTP)
	}
	for i, h := range g.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ @") || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			return fmt.Errorf("allowed_hosts[%d]: %q must be host, host:port or *.domain", i, h)
		}
	}
	if len(g.Mounts) > 0 && !has[string(tools.CapFS)] {
		return fmt.Errorf("mounts: need capability %s", tools.CapFS)
	}
	for i, m := range g.Mounts {
		if !filepath.IsAbs(m.HostPath) || filepath.Clean(m.HostPath) != m.HostPath {
			return fmt.Errorf("mounts[%d].host_path: %q must be a clean absolute path", i, m.HostPath)
		}
	}
	if len(g.Secrets) > 0 && !has[string(tools.CapSecrets)] {
		return fmt.Errorf("secrets: need capability %s", tools.CapSecrets)
	}
	if err := checkSecretIDs(g.Secrets); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if g.ModuleSHA256 != "" && !sha256RE.MatchString(g.ModuleSHA256) {
		return fmt.Errorf("module_sha256: %q must be 64 lowercase hex digits", g.ModuleSHA256)
	}
	return nil
}

func checkSecretIDs(ids []string) error {
	for _, id := range ids {
		if id == tools.AnySecret {
			continue
		}
		if _, ok := projection.IsRef(projection.RefPrefix + id); !ok {
			return fmt.Errorf("%q is not a secret id ([A-Za-z0-9._-]+) or \"*\"", id)
		}
	}
	return nil
}

// normalize sorts and deduplicates the lists and computes the hash (the
// policy's normalisation; "seal" is only the chaining of an envelope).
func (p *Policy) normalize() {
	for k, caps := range p.ToolCapabilities {
		caps = slices.Clone(caps)
		sort.Strings(caps)
		p.ToolCapabilities[k] = slices.Compact(caps)
	}
	doc := map[string]any{
		"policy_id":         p.PolicyID,
		"version":           p.Version,
		"tool_capabilities": p.ToolCapabilities,
		"tool_state_keys":   p.ToolStateKeys,
		"default":           p.permissive,
	}
	// Added only when set, so a policy without them keeps its hash.
	if len(p.ToolSecrets) > 0 {
		doc["tool_secrets"] = p.ToolSecrets
	}
	if p.Uploads != nil {
		doc["uploads"] = p.Uploads
	}
	if p.OCI != nil {
		doc["oci"] = p.OCI.hashDoc()
	}
	h, err := canonical.Hash(doc)
	if err != nil {
		panic("policy: canonical hash: " + err.Error()) // strings, lists and bools always encode
	}
	p.hash = h
}

// Hash is the SHA-256 of the policy's canonical JSON (RFC 8785).
func (p *Policy) Hash() string { return p.hash }

// Permissive reports whether this is the default allow-registered policy.
func (p *Policy) Permissive() bool { return p.permissive }

// Warnings lists what in the policy is legal but probably not meant: an
// operator tool granted nanovm:secrets with no tool_secrets entry, which
// can resolve no secret.
func (p *Policy) Warnings() []string {
	var out []string
	for tool, caps := range p.ToolCapabilities {
		if slices.Contains(caps, string(tools.CapSecrets)) && len(p.ToolSecrets[tool]) == 0 && !p.permissive {
			out = append(out, fmt.Sprintf("tool %q holds %s but tool_secrets grants it no secret: every secret_get it makes is denied", tool, tools.CapSecrets))
		}
	}
	if o := p.OCI; o != nil && o.trust != nil && len(o.trust.Keys) == 0 && o.trust.Root == nil {
		if req, _, why := p.signatureRuleAny(); req {
			out = append(out, fmt.Sprintf("%s requires a signature, and oci names no trusted_keys or trusted_root: every such registration is refused", strings.Join(why, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

// Allowed reports whether the policy may let a tool of this name run: an
// operator tool it lists, or any upload when it has an uploads section.
// Registry.Resolve asks Grant, which knows who registered the version.
func (p *Policy) Allowed(tool string) bool {
	if p.permissive || p.Uploads != nil {
		return true
	}
	_, ok := p.ToolCapabilities[tool]
	return ok
}

// Grant implements tools.Grants (gate C). An operator or bundled tool gets
// what its manifest asks under the default policy (authority "manifest"),
// else its tool_capabilities entry (authority "policy") with its
// tool_secrets. An upload gets its uploads.tools entry (authority
// "upload-policy") when there is one and its pin, if any, matches the
// module, else the uploads default ("upload-default"); never what
// tool_capabilities grants a tool of the same name.
func (p *Policy) Grant(req tools.GrantRequest) (tools.Grant, error) {
	if err := p.checkSigned(req); err != nil {
		return tools.Grant{}, &DeniedError{Tools: []string{req.Name}, Reason: err.Error()}
	}
	if req.Source.Trusted() || req.Source == "" {
		if p.permissive {
			return tools.DefaultGrant(req), nil
		}
		allowed, ok := p.ToolCapabilities[req.Name]
		if !ok {
			return tools.Grant{}, &DeniedError{Tools: []string{req.Name}}
		}
		g := tools.Grant{Capabilities: map[string]string{}, Secrets: slices.Clone(p.ToolSecrets[req.Name])}
		for _, c := range allowed {
			g.Capabilities[c] = tools.AuthorityPolicy
		}
		return g, nil
	}
	if p.Uploads == nil {
		return tools.Grant{}, &DeniedError{Tools: []string{req.Name}, Reason: "the policy has no uploads section, so no uploaded tool may run"}
	}
	e, note := p.uploadEntry(req.Name, req.ModuleSHA256, signerID(req.Provenance))
	if e != nil {
		return e.grant(tools.AuthorityUploadPolicy, e.ReplaceOperator, ""), nil
	}
	d := DefaultUploadGrant()
	if p.Uploads.Default != nil {
		d = *p.Uploads.Default
	}
	return d.grant(tools.AuthorityUploadDefault, false, note), nil
}

// GrantsFrozen implements tools.FrozenGrants: the policy is loaded once
// and frozen, so Grant answers each version as it did the first time, and
// the registry asks it once per version.
func (p *Policy) GrantsFrozen() bool { return true }

var _ tools.FrozenGrants = (*Policy)(nil)

// uploadEntry returns the uploads.tools entry that applies to an upload of
// name with module sha, or nil and, when an entry is pinned to another
// module, why it does not apply.
func (p *Policy) uploadEntry(name, sha, signer string) (*UploadGrant, string) {
	if p.Uploads == nil {
		return nil, ""
	}
	e, ok := p.Uploads.Tools[name]
	if !ok {
		return nil, ""
	}
	if e.ModuleSHA256 != "" && e.ModuleSHA256 != sha {
		return nil, fmt.Sprintf("the policy's uploads.tools.%s is pinned to module sha256:%s, this module is sha256:%s, so the uploads default applies", name, e.ModuleSHA256, sha)
	}
	if len(e.SignedBy) > 0 && !slices.Contains(e.SignedBy, signer) {
		who := "this version is not from an artifact signed by any of them"
		if signer != "" {
			who = "this version's artifact is signed by " + signer
		}
		return nil, fmt.Sprintf("the policy's uploads.tools.%s applies to artifacts signed by %s; %s, so the uploads default applies", name, strings.Join(e.SignedBy, ", "), who)
	}
	return &e, ""
}

func (g *UploadGrant) grant(authority string, replace bool, note string) tools.Grant {
	out := tools.Grant{
		Capabilities:       map[string]string{},
		Bounded:            true,
		Mounts:             slices.Clone(g.Mounts),
		AllowedHosts:       slices.Clone(g.AllowedHosts),
		Secrets:            slices.Clone(g.Secrets),
		MayReplaceOperator: replace,
		Note:               note,
	}
	for _, c := range g.Capabilities {
		if c != string(tools.CapStdio) {
			out.Capabilities[c] = authority
		}
	}
	return out
}

// StateKeys returns the state keys a tool may see: its tool_state_keys
// entry for an operator or bundled tool, its uploads entry's state_keys for
// an upload (none under the default).
func (p *Policy) StateKeys(tool string, source store.ToolSource, moduleSHA256, signerID string) []string {
	if source.Trusted() || source == "" {
		return p.ToolStateKeys[tool]
	}
	if e, _ := p.uploadEntry(tool, moduleSHA256, signerID); e != nil {
		return e.StateKeys
	}
	if p.Uploads != nil && p.Uploads.Default != nil {
		return p.Uploads.Default.StateKeys
	}
	return nil
}

// Check returns a *DeniedError naming every tool in prog (parallel
// sub-steps included) that the policy does not allow, or nil. A name
// tool_capabilities lists is allowed; an unlisted one only when the policy
// has an uploads section and sourceOf says the tool is an upload (nil
// sourceOf: never). Registry.Resolve decides for each call, by the source of
// the exact version; this only refuses early what cannot run.
func (p *Policy) Check(prog *kernel.Program, sourceOf func(tool string) store.ToolSource) error {
	if p.permissive {
		return nil
	}
	allowed := func(name string) bool {
		if _, ok := p.ToolCapabilities[name]; ok {
			return true
		}
		return p.Uploads != nil && sourceOf != nil && sourceOf(name) == store.SourceUpload
	}
	var denied []string
	var visit func(steps []kernel.Step)
	visit = func(steps []kernel.Step) {
		for i := range steps {
			s := &steps[i]
			if s.Type == kernel.StepTool {
				name, _, _ := strings.Cut(s.Tool, "@")
				if !slices.Contains(denied, name) && !allowed(name) {
					denied = append(denied, name)
				}
			}
			visit(s.ParallelSteps)
		}
	}
	visit(prog.Steps)
	if len(denied) == 0 {
		return nil
	}
	sort.Strings(denied)
	return &DeniedError{Tools: denied}
}

// DeniedError is returned when a program or a call uses tools the policy
// does not allow. Its code is "capability_denied", as in the original.
type DeniedError struct {
	Tools []string
	// Reason, when set, says why.
	Reason string
}

func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("capability_denied: the policy does not allow tool(s) %s", strings.Join(quoteAll(e.Tools), ", "))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
