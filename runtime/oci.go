package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/signature"
)

// RegisterToolOCI registers the tool an OCI artifact holds on a client's
// behalf (the MCP register_tool with "oci"): source "upload", so the
// policy's uploads section decides its powers, and only from a registry
// the policy's oci.registries allows. manifest, when not nil, is the
// manifest for an artifact that carries none (a Wasm artifact, an
// image); an artifact carrying its own keeps it. Its signature is checked
// as PullTool's.
func (rt *Runtime) RegisterToolOCI(ctx context.Context, ref string, manifest []byte) ([]store.ToolRecord, error) {
	if rt.cfg.DisableToolUpload {
		return nil, newError(CodeUploadDisabled, nil, "the operator disabled tool upload; add tools to the tools folder instead")
	}
	return rt.registerOCI(ctx, store.SourceUpload, ref, manifest)
}

// PullTool registers the tool an OCI artifact holds on the operator's
// behalf (the CLI's `tool pull`): source "operator", from any registry.
// The policy's signature rules apply: where they require one, an
// artifact with no bundle signed by a trusted key or identity is refused,
// saying why.
func (rt *Runtime) PullTool(ctx context.Context, ref string, manifest []byte) ([]store.ToolRecord, error) {
	return rt.registerOCI(ctx, store.SourceOperator, ref, manifest)
}

// OCIClient is the registry client the runtime uses: the operator's
// credentials and insecure registries, modules bounded by
// --max-module-bytes.
func (rt *Runtime) OCIClient() (*oci.Client, error) {
	cred := rt.cfg.RegistryCredentials
	if cred == nil {
		c, err := oci.DockerCredentials()
		if err != nil {
			return nil, err
		}
		cred = c
	}
	return oci.NewClient(oci.Options{
		Limits:             oci.Limits{ModuleBytes: rt.cfg.ModuleLimits.ModuleBytes},
		InsecureRegistries: rt.cfg.InsecureRegistries,
		Credentials:        cred,
	}), nil
}

func (rt *Runtime) registerOCI(ctx context.Context, src store.ToolSource, refStr string, manifest []byte) ([]store.ToolRecord, error) {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return nil, newError(CodeInvalidArgument, err, "%v", err)
	}
	refuse := func(code string, err error, format string, args ...any) error {
		return newError(code, err, "register tool from %s: %s", ref, fmt.Sprintf(format, args...))
	}
	var reg *OCIRegistry
	if !src.Trusted() {
		if reg, err = rt.policy.OCI.registry(ref); err != nil {
			return nil, refuse(CodeCapabilityDenied, tools.ErrCapabilityDenied, "%v", err)
		}
	}
	client, err := rt.OCIClient()
	if err != nil {
		return nil, refuse(CodeToolRejected, err, "%v", err)
	}
	// A registry that trickles its bytes is bounded in time as in size.
	pctx, cancel := context.WithTimeout(ctx, PullTimeout)
	defer cancel()
	art, err := client.Pull(pctx, ref)
	if err != nil {
		return nil, refuse(CodeToolRejected, err, "%v", err)
	}
	switch {
	case art.ToolManifest != nil && manifest != nil:
		return nil, refuse(CodeInvalidArgument, nil, "the artifact carries its own manifest (annotation %s); omit manifest", oci.AnnotationToolManifest)
	case art.ToolManifest != nil:
		manifest = art.ToolManifest
	case manifest == nil:
		manifest, _ = json.Marshal(map[string]string{"name": defaultToolName(ref.Repository)})
	}
	m, err := tools.ParseManifest(manifest)
	if err != nil {
		return nil, refuse(CodeToolRejected, err, "%v", err)
	}
	prov := &store.ToolProvenance{Origin: store.OriginOCI, Ref: art.Pinned, Requested: ref.String(), Layout: art.Layout}
	signer, err := rt.verifyOCI(pctx, client, ref, art.Digest)
	required, signers, why := rt.policy.signatureRule(m.Name, reg, true)
	switch {
	case err != nil && required:
		return nil, refuse(CodeCapabilityDenied, err, "%s requires a signature for %q, and %s has none that verifies: %v", strings.Join(why, " and "), m.Name, art.Pinned, err)
	case err != nil && !errors.Is(err, signature.ErrUnsigned) && !errors.Is(err, errNoTrust):
		rt.log.Warn("tool registered unsigned: its signatures do not verify", "ref", art.Pinned, "error", err)
	case err == nil && len(signers) > 0 && !containsStr(signers, signer.ID):
		return nil, refuse(CodeCapabilityDenied, tools.ErrCapabilityDenied, "%s is signed by %s, and %s accept only %s", art.Pinned, signer, strings.Join(why, " and "), strings.Join(signers, ", "))
	}
	if err == nil {
		prov.Signer, prov.SignerID = signer.String(), signer.ID
	}
	return rt.registerToolsFrom(ctx, src, prov, manifest, art.Module)
}

// PullTimeout bounds the reads from a registry of one registration: the
// artifact and its signatures.
const PullTimeout = 5 * time.Minute

var errNoTrust = errors.New("the policy names no trusted key or trusted root (oci.trusted_keys, oci.trusted_root)")

// verifyOCI returns who signed the artifact digest names, from the
// bundles attached to it, against the policy's trusted keys and root.
func (rt *Runtime) verifyOCI(ctx context.Context, client *oci.Client, ref oci.Reference, digest string) (signature.Signer, error) {
	o := rt.policy.OCI
	if o == nil || o.trust == nil || (len(o.trust.Keys) == 0 && o.trust.Root == nil) {
		return signature.Signer{}, errNoTrust
	}
	bundles, err := client.Bundles(ctx, ref, digest)
	if err != nil {
		return signature.Signer{}, err
	}
	d, err := oci.DigestBytes(digest)
	if err != nil {
		return signature.Signer{}, err
	}
	return o.trust.Verify(bundles, d)
}

var badNameChar = regexp.MustCompile(`[^a-z0-9_.-]+`)

// defaultToolName is the tool name for an artifact that carries no
// manifest: its repository's last element, made a valid name.
func defaultToolName(repo string) string {
	n := repo[strings.LastIndex(repo, "/")+1:]
	n = badNameChar.ReplaceAllString(strings.ToLower(n), "_")
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		n = "t" + n
	}
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
