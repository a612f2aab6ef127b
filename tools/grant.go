package tools

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// Authorities: who granted a capability, as the tool record, get_tool and
// every step record say.
const (
	// AuthorityManifest is an operator (or bundled) tool under the default
	// policy: the operator wrote or shipped the manifest, so what it asks
	// for is the operator's decision.
	AuthorityManifest = "manifest"
	// AuthorityPolicy is the policy file's tool_capabilities, which grants
	// to operator and bundled tools only.
	AuthorityPolicy = "policy"
	// AuthorityUploadDefault is the grant of an uploaded tool the policy
	// names nowhere: DefaultUploadCapabilities unless the policy's
	// uploads.default says otherwise.
	AuthorityUploadDefault = "upload-default"
	// AuthorityUploadPolicy is the policy's uploads.tools entry for the
	// uploaded tool's name.
	AuthorityUploadPolicy = "upload-policy"
)

// AnySecret in a Grant's Secrets lets the tool resolve any secret its call
// is given (still only refs that appear in the call's arguments).
const AnySecret = "*"

// DefaultUploadCapabilities is what an uploaded tool may hold when no policy
// says otherwise: nanovm:log (wasi:stdio is implied). nanovm:log only writes
// lines into the call's own log, as stderr already can, through the same
// cap and scrubber; everything that reaches outside the sandbox (files,
// network, secrets, real time and randomness, state) is the operator's to
// grant.
func DefaultUploadCapabilities() []string { return []string{string(CapLog)} }

// GrantRequest is what gate C is asked about one tool version.
type GrantRequest struct {
	// Name is the tool's name.
	Name string
	// ModuleSHA256 is the module's hash, for grants pinned to one module.
	ModuleSHA256 string
	// Source is who registered the version.
	Source toolrecord.Source
	// Manifest is the version's manifest; read only.
	Manifest *Manifest
	// Provenance is where the module came from (an OCI artifact and its
	// verified signer); nil for a file or an upload of bytes.
	Provenance *toolrecord.Provenance
}

// Grant is gate C's answer for one tool version.
type Grant struct {
	// Capabilities maps each capability the tool may hold (beyond
	// wasi:stdio) to the authority granting it. The tool holds those its
	// manifest also asks for.
	Capabilities map[string]string
	// Bounded says the manifest's mounts and allowed hosts must lie within
	// Mounts and AllowedHosts (an upload: the uploader asks, the operator
	// grants). When false they are the operator's own (a trusted manifest).
	Bounded bool
	// Mounts bound an upload's mounts: each must have the host path of a
	// granted mount or lie beneath it, and be read-only if that one is.
	Mounts []Mount
	// AllowedHosts bound an upload's allowed_hosts: each must be granted,
	// or lie under a granted "*.domain".
	AllowedHosts []string
	// Secrets are the secret ids the tool may resolve, AnySecret for any;
	// nil or empty means none. A call resolves only refs that also appear
	// in its own arguments.
	Secrets []string
	// MayReplaceOperator lets an upload replace a tool whose current
	// version is bundled or the operator's. Only the policy's uploads
	// entry for that name can set it.
	MayReplaceOperator bool
	// Note, when set, is added to a refusal to say why the grant is what
	// it is (say, an uploads entry pinned to another module).
	Note string
}

// Grants is gate C: the operator's policy decides whether a tool version
// may run, which of the capabilities it asks for it holds, and, for an
// upload, how far its mounts and hosts may reach. Grant returns an error
// naming why a tool may not run at all.
//
// The registry only reads a returned Grant (its maps and slices may be
// shared with the implementation's own state, or between answers), and
// keeps nothing of it but copies (Tool.Granted, Tool.Authority and the
// secrets are built anew from it).
type Grants interface {
	Grant(req GrantRequest) (Grant, error)
}

// FrozenGrants is a Grants that may say its answers never change: Grant
// answers a request for a version (module, manifest, source and
// provenance) as it answered the first, for the registry's life, as a
// policy loaded once and frozen does. The registry then asks it once per
// version and keeps the Tool it builds; a policy that can change must
// report false, and is asked at every resolve.
type FrozenGrants interface {
	Grants
	GrantsFrozen() bool
}

// DefaultGrant is the grant when there is no policy: a bundled or operator
// tool holds what its manifest asks, with any secret its calls are given;
// an upload holds DefaultUploadCapabilities and nothing else.
func DefaultGrant(req GrantRequest) Grant {
	if req.Source.Trusted() || req.Source == "" {
		g := Grant{Capabilities: map[string]string{}, Secrets: []string{AnySecret}}
		for _, c := range req.Manifest.Capabilities {
			g.Capabilities[c] = AuthorityManifest
		}
		return g
	}
	g := Grant{Capabilities: map[string]string{}, Bounded: true}
	for _, c := range DefaultUploadCapabilities() {
		g.Capabilities[c] = AuthorityUploadDefault
	}
	return g
}

// effective is the part of g that m asks for: the capabilities the tool
// holds, sorted, and their authorities.
func (g *Grant) effective(m *Manifest) ([]string, map[string]string) {
	var caps []string
	auth := map[string]string{}
	for _, c := range m.Capabilities {
		if a, ok := g.Capabilities[c]; ok {
			caps = append(caps, c)
			auth[c] = a
		}
	}
	sort.Strings(caps)
	return caps, auth
}

// within checks that an upload's manifest asks for no more than g: every
// capability granted, every mount and host inside the granted ones. The
// error names the first field that asks for more.
func (g *Grant) within(m *Manifest) error {
	if !g.Bounded {
		return nil
	}
	refuse := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if g.Note != "" {
			msg += " (" + g.Note + ")"
		}
		return detail(ErrCapabilityDenied, "uploaded tool %q: %s", m.Name, msg)
	}
	for _, c := range m.Capabilities {
		if _, ok := g.Capabilities[c]; !ok {
			return refuse("capabilities: %q is not granted to this upload (granted: %s); the operator grants more in the policy's uploads section", c, grantedList(g.Capabilities))
		}
	}
	for i, h := range m.AllowedHosts {
		if !hostWithin(h, g.AllowedHosts) {
			return refuse("allowed_hosts[%d]: %q is not granted to this upload (granted: %s)", i, h, orNone(g.AllowedHosts))
		}
	}
	for i, mt := range m.Mounts {
		if err := mountWithin(mt, g.Mounts); err != "" {
			return refuse("mounts[%d]: host_path %q %s", i, mt.HostPath, err)
		}
	}
	return nil
}

func grantedList(caps map[string]string) string {
	out := []string{string(CapStdio)}
	for c := range caps {
		out = append(out, c)
	}
	sort.Strings(out[1:])
	return strings.Join(out, ", ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// hostWithin reports whether the allowed_hosts entry h is covered by one of
// granted: equal to it, a host:port of a bare granted host, or under a
// granted "*.domain" (itself a subdomain pattern or a host).
func hostWithin(h string, granted []string) bool {
	h = strings.ToLower(h)
	bare, _, hasPort := strings.Cut(h, ":")
	for _, g := range granted {
		g = strings.ToLower(g)
		if g == h || (hasPort && !strings.Contains(g, ":") && g == bare) {
			return true
		}
		if suffix, ok := strings.CutPrefix(g, "*"); ok && !strings.Contains(g, ":") {
			// "*.example.com" covers "api.example.com" and "*.api.example.com".
			host := strings.TrimPrefix(bare, "*")
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		}
	}
	return false
}

// mountWithin returns "" when mt lies within one of granted, or why not.
// Paths are compared lexically and must be clean; whether the directory
// itself can be escaped through links is the mount's own business
// (confined at open).
func mountWithin(mt Mount, granted []Mount) string {
	if len(granted) == 0 {
		return "is not granted: this upload may mount nothing"
	}
	if path.Clean(mt.HostPath) != mt.HostPath {
		return "must be a clean path"
	}
	for _, g := range granted {
		gp := path.Clean(g.HostPath)
		if mt.HostPath != gp && !strings.HasPrefix(mt.HostPath, strings.TrimSuffix(gp, "/")+"/") {
			continue
		}
		if g.ReadOnly && !mt.ReadOnly {
			return fmt.Sprintf("is granted read-only (under %q); set read_only", gp)
		}
		return ""
	}
	var dirs []string
	for _, g := range granted {
		dirs = append(dirs, g.HostPath)
	}
	return "is not under a granted mount (" + strings.Join(dirs, ", ") + ")"
}

// secretAllowed reports whether the grant lets the tool resolve id.
func secretAllowed(grant []string, id string) bool {
	return slices.Contains(grant, AnySecret) || slices.Contains(grant, id)
}
