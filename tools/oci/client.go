package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Options configure a Client.
type Options struct {
	// Limits bound what is read.
	Limits Limits
	// InsecureRegistries may be reached over plain HTTP (the operator's
	// --insecure-registry); a loopback registry always may.
	InsecureRegistries []string
	// Credentials returns the credential for a registry; nil means
	// anonymous. DockerCredentials reads the operator's Docker config.
	Credentials auth.CredentialFunc
	// HTTPClient is the transport; nil means http.DefaultClient's.
	HTTPClient *http.Client
}

// DockerCredentials returns the credentials of the operator's Docker-style
// config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, with
// its credential helpers); nil when there is none. Credentials never come
// from a client.
func DockerCredentials() (auth.CredentialFunc, error) {
	st, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("read registry credentials: %w", err)
	}
	return credentials.Credential(st), nil
}

// Client reads and writes tool artifacts. It is safe for concurrent use.
type Client struct {
	opts Options
}

// NewClient returns a client with opts.
func NewClient(opts Options) *Client {
	opts.Limits = opts.Limits.withDefaults()
	return &Client{opts: opts}
}

// Artifact is a module read from a registry.
type Artifact struct {
	// Ref is the reference as asked.
	Ref Reference
	// Digest is the digest of the manifest (or index) the reference
	// resolved to, "sha256:<hex>": what signatures sign.
	Digest string
	// Pinned is Ref by that digest: oci://HOST/REPO@DIGEST.
	Pinned string
	// Layout is LayoutWasm, LayoutNanoVM or LayoutImage.
	Layout string
	// Module is the WebAssembly module.
	Module []byte
	// ToolManifest is the tool manifest the artifact carries (LayoutNanoVM),
	// nil otherwise.
	ToolManifest []byte
	// Annotations are the module manifest's annotations.
	Annotations map[string]string
}

func (c *Client) repository(ref Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrReference, ref, err)
	}
	if ref.Loopback() || slices.Contains(c.opts.InsecureRegistries, ref.Registry) {
		repo.PlainHTTP = true
	}
	hc := c.opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	repo.Client = &auth.Client{Client: hc, Credential: c.opts.Credentials, Cache: auth.NewCache()}
	// Referrers: ask the API, fall back to the tag schema on a registry
	// without it (oras-go decides).
	return repo, nil
}

// fetch reads a blob or manifest of at most max bytes and checks it hashes
// to desc's digest (oras-go checks too; this check is the one the error
// names).
func fetch(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor, max int64, what string) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("fetch %s %s: %w: %d bytes, at most %d", what, desc.Digest, ErrTooLarge, desc.Size, max)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w: %w", what, ErrLayout, err)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s %s: %w", what, desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s %s: %w", what, desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("fetch %s: %w: the registry served %d bytes hashing to %s for %s (%d bytes): tampered with or corrupt",
			what, ErrDigestMismatch, len(b), desc.Digest.Algorithm().FromBytes(b), desc.Digest, desc.Size)
	}
	return b, nil
}

// resolve resolves ref to a manifest descriptor and reads it.
func (c *Client) resolve(ctx context.Context, repo *remote.Repository, ref Reference) (ocispec.Descriptor, []byte, error) {
	desc, err := repo.Resolve(ctx, ref.Ref())
	if err != nil {
		return desc, nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if ref.Digest != "" && desc.Digest.String() != ref.Digest {
		return desc, nil, fmt.Errorf("resolve %s: %w: the registry answered %s", ref, ErrDigestMismatch, desc.Digest)
	}
	b, err := fetch(ctx, repo.Manifests(), desc, c.opts.Limits.ManifestBytes, "manifest")
	if err != nil {
		return desc, nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return desc, b, nil
}

// Pull reads the module ref names, in any layout this package reads.
func (c *Client) Pull(ctx context.Context, ref Reference) (*Artifact, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return nil, err
	}
	top, b, err := c.resolve(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	lim := c.opts.Limits
	m, err := DecodeManifest(b, top.MediaType, lim)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if m.IsIndex() {
		d, err := ChooseManifest(m)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		sub := ocispec.Descriptor{MediaType: d.MediaType, Digest: digest.Digest(d.Digest), Size: d.Size}
		if b, err = fetch(ctx, repo.Manifests(), sub, lim.ManifestBytes, "manifest"); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		if m, err = DecodeManifest(b, d.MediaType, lim); err != nil {
			return nil, fmt.Errorf("pull %s: %s: %w", ref, d.Digest, err)
		}
		if m.IsIndex() {
			return nil, fmt.Errorf("pull %s: %w: an index inside an index", ref, ErrLayout)
		}
	}
	layout, layer, err := ModuleLayer(m)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	max := lim.ModuleBytes
	if layout == LayoutImage {
		max = lim.layerBytes()
	}
	ld := ocispec.Descriptor{MediaType: layer.MediaType, Digest: digest.Digest(layer.Digest), Size: layer.Size}
	if layer.Size > max {
		return nil, fmt.Errorf("pull %s: layer %s: %w: %d bytes, the module limit is %d (--max-module-bytes)", ref, layer.Digest, ErrTooLarge, layer.Size, lim.ModuleBytes)
	}
	blob, err := fetch(ctx, repo.Blobs(), ld, max, "layer")
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	a := &Artifact{Ref: ref, Digest: top.Digest.String(), Pinned: ref.Pinned(top.Digest.String()), Layout: layout, Annotations: m.Annotations}
	if layout == LayoutImage {
		if a.Module, err = ExtractPlugin(blob, layer.MediaType, lim); err != nil {
			return nil, fmt.Errorf("pull %s: layer %s: %w", ref, layer.Digest, err)
		}
	} else {
		a.Module = blob
	}
	if s, ok := m.Annotations[AnnotationToolManifest]; ok {
		a.ToolManifest = []byte(s)
	}
	return a, nil
}

// Push publishes module (and toolManifest, when not nil, as the annotation
// AnnotationToolManifest) as a Wasm OCI artifact at ref, and returns the
// manifest's digest. A reference by tag is tagged; by digest, the digest
// must be the one pushed.
func (c *Client) Push(ctx context.Context, ref Reference, module, toolManifest []byte) (string, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return "", err
	}
	layer := ocispec.Descriptor{MediaType: MediaTypeWasm, Digest: digest.FromBytes(module), Size: int64(len(module))}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "wasm", "os": "wasip1", "layerDigests": []string{layer.Digest.String()},
	})
	cfgDesc := ocispec.Descriptor{MediaType: MediaTypeWasmConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	for _, b := range []struct {
		d ocispec.Descriptor
		v []byte
	}{{layer, module}, {cfgDesc, cfg}} {
		if err := pushBlob(ctx, repo, b.d, b.v); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
	}
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: MediaTypeOCIManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{layer},
	}
	if toolManifest != nil {
		man.Annotations = map[string]string{AnnotationToolManifest: string(toolManifest)}
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	md := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if ref.Digest != "" && ref.Digest != md.Digest.String() {
		return "", fmt.Errorf("push %s: %w: the artifact's digest is %s", ref, ErrDigestMismatch, md.Digest)
	}
	if ref.Tag != "" {
		err = repo.PushReference(ctx, md, bytes.NewReader(mb), ref.Tag)
	} else {
		err = repo.Push(ctx, md, bytes.NewReader(mb))
	}
	if err != nil {
		return "", fmt.Errorf("push %s: manifest: %w", ref, err)
	}
	return md.Digest.String(), nil
}

func pushBlob(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, b []byte) error {
	if ok, err := repo.Exists(ctx, d); err == nil && ok {
		return nil
	}
	if err := repo.Push(ctx, d, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}

// AttachBundle pushes a Sigstore bundle as a referrer of the manifest
// digest names, as cosign does: an OCI 1.1 manifest of artifact type
// MediaTypeSigstoreBundle with the bundle as its one layer and the signed
// manifest as its subject (in the tag-schema index on a registry without
// the referrers API).
func (c *Client) AttachBundle(ctx context.Context, ref Reference, dgst string, bundle []byte) error {
	repo, err := c.repository(ref)
	if err != nil {
		return err
	}
	subject, err := repo.Resolve(ctx, dgst)
	if err != nil {
		return fmt.Errorf("attach signature to %s: %w", ref.Pinned(dgst), err)
	}
	bd := ocispec.Descriptor{MediaType: MediaTypeSigstoreBundle, Digest: digest.FromBytes(bundle), Size: int64(len(bundle))}
	if err := pushBlob(ctx, repo, bd, bundle); err != nil {
		return fmt.Errorf("attach signature to %s: %w", ref.Pinned(dgst), err)
	}
	_, err = oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, MediaTypeSigstoreBundle, oras.PackManifestOptions{
		Subject: &subject,
		Layers:  []ocispec.Descriptor{bd},
		// A fixed time keeps the referrer reproducible.
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "1970-01-01T00:00:00Z"},
	})
	if err != nil {
		return fmt.Errorf("attach signature to %s: %w", ref.Pinned(dgst), err)
	}
	return nil
}

// Bundles returns the Sigstore bundles attached to the manifest dgst names
// (referrers of artifact type MediaTypeSigstoreBundle), at most
// Limits.Referrers of them, each at most Limits.BundleBytes and checked
// against its digest. Which of them verify is the caller's to decide.
func (c *Client) Bundles(ctx context.Context, ref Reference, dgst string) ([][]byte, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return nil, err
	}
	lim := c.opts.Limits
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w: %w", ref, ErrReference, err)
	}
	subject, err := repo.Resolve(ctx, d.String())
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", ref.Pinned(dgst), err)
	}
	var refs []ocispec.Descriptor
	errEnough := errors.New("enough")
	err = repo.Referrers(ctx, subject, MediaTypeSigstoreBundle, func(page []ocispec.Descriptor) error {
		for _, r := range page {
			if r.ArtifactType != MediaTypeSigstoreBundle && r.ArtifactType != "" {
				continue
			}
			refs = append(refs, r)
			if len(refs) >= lim.Referrers {
				return errEnough
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("signatures of %s: %w", ref.Pinned(dgst), err)
	}
	var out [][]byte
	for _, r := range refs {
		b, err := fetch(ctx, repo.Manifests(), r, min(lim.ManifestBytes, 64<<10), "signature manifest")
		if err != nil {
			return nil, fmt.Errorf("signatures of %s: %w", ref.Pinned(dgst), err)
		}
		m, err := DecodeManifest(b, r.MediaType, lim)
		if err != nil || m.IsIndex() || m.Subject == nil || m.Subject.Digest != dgst {
			continue // not a bundle for this artifact: it cannot vouch for it
		}
		for _, l := range m.Layers {
			if l.MediaType != MediaTypeSigstoreBundle {
				continue
			}
			ld := ocispec.Descriptor{MediaType: l.MediaType, Digest: digest.Digest(l.Digest), Size: l.Size}
			bb, err := fetch(ctx, repo.Blobs(), ld, lim.BundleBytes, "signature bundle")
			if err != nil {
				return nil, fmt.Errorf("signatures of %s: %w", ref.Pinned(dgst), err)
			}
			out = append(out, bb)
		}
	}
	return out, nil
}

// DigestBytes returns the raw bytes of a "sha256:<hex>" digest.
func DigestBytes(dgst string) ([]byte, error) {
	d, err := digest.Parse(dgst)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("%w: %q is not a sha256 digest", ErrReference, dgst)
	}
	return hex.DecodeString(d.Encoded())
}

// SHA256Digest is "sha256:<hex>" of b.
func SHA256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Manifest returns the digest and bytes of the manifest (or index) ref
// resolves to, checked against the digest: what a signature signs.
func (c *Client) Manifest(ctx context.Context, ref Reference) (string, []byte, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return "", nil, err
	}
	desc, b, err := c.resolve(ctx, repo, ref)
	if err != nil {
		return "", nil, err
	}
	return desc.Digest.String(), b, nil
}
