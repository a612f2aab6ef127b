package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Media types and annotations this package reads and writes.
const (
	// MediaTypeWasmConfig is the CNCF Wasm OCI artifact's config.
	MediaTypeWasmConfig = "application/vnd.wasm.config.v0+json"
	// MediaTypeWasm is the Wasm OCI artifact's module layer.
	MediaTypeWasm = "application/wasm"
	// MediaTypeOCIManifest and MediaTypeDockerManifest are the manifests
	// read; MediaTypeOCIIndex and MediaTypeDockerList the indexes (one
	// module manifest is chosen from them).
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	// The tar layers of an image: the module is the file plugin.wasm.
	MediaTypeOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayer        = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeSigstoreBundle is a Sigstore bundle (v0.3), as cosign
	// attaches it: the artifact type of a referrer and its one layer.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// AnnotationToolManifest holds our tool manifest (JSON) on the
	// artifact's manifest, so the signature over the manifest digest
	// covers it and the layout stays the Wasm artifact's.
	AnnotationToolManifest = "dev.nanovm.tool.manifest"
	// PluginFile is the module's name in an image layer (hyper-mcp's).
	PluginFile = "plugin.wasm"
)

// Layouts, as Artifact.Layout says.
const (
	LayoutWasm   = "wasm"   // the CNCF Wasm artifact, no tool manifest
	LayoutNanoVM = "nanovm" // the Wasm artifact with AnnotationToolManifest
	LayoutImage  = "image"  // an image with /plugin.wasm in a tar layer
)

// Limits bound what is read from a registry. The zero value of a field
// means its default.
type Limits struct {
	// ModuleBytes bounds the module (the server's --max-module-bytes);
	// default 64 MiB.
	ModuleBytes int64
	// ManifestBytes bounds a manifest or index; default 4 MiB (the
	// distribution registry's own limit).
	ManifestBytes int64
	// Layers bounds a manifest's layers and an index's manifests;
	// default 16.
	Layers int
	// TarEntries bounds the entries read from a tar layer; default 1000.
	TarEntries int
	// BundleBytes bounds a signature bundle; default 1 MiB.
	BundleBytes int64
	// Referrers bounds the signatures examined; default 16.
	Referrers int
}

func (l Limits) withDefaults() Limits {
	if l.ModuleBytes <= 0 {
		l.ModuleBytes = 64 << 20
	}
	if l.ManifestBytes <= 0 {
		l.ManifestBytes = 4 << 20
	}
	if l.Layers <= 0 {
		l.Layers = 16
	}
	if l.TarEntries <= 0 {
		l.TarEntries = 1000
	}
	if l.BundleBytes <= 0 {
		l.BundleBytes = 1 << 20
	}
	if l.Referrers <= 0 {
		l.Referrers = 16
	}
	return l
}

// layerBytes bounds a compressed tar layer and the bytes decompressed
// from one: the module plus room for tar headers and small files.
func (l Limits) layerBytes() int64 { return l.ModuleBytes + 1<<20 }

// Descriptor is the part of an OCI descriptor this package reads.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

// Manifest is a decoded image manifest or index.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *Descriptor       `json:"config,omitempty"`
	Layers        []Descriptor      `json:"layers,omitempty"`
	Manifests     []Descriptor      `json:"manifests,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// IsIndex reports whether m is an index (or a Docker manifest list).
func (m *Manifest) IsIndex() bool {
	return m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerList || (m.MediaType == "" && m.Manifests != nil && m.Config == nil)
}

// DecodeManifest decodes a manifest or index read from a registry,
// checking its shape: schemaVersion 2, a known media type (mediaType when
// the registry gave none), at most lim.Layers layers or manifests, and
// every descriptor with a valid digest and a size within the bounds.
func DecodeManifest(b []byte, mediaType string, lim Limits) (*Manifest, error) {
	lim = lim.withDefaults()
	if int64(len(b)) > lim.ManifestBytes {
		return nil, fmt.Errorf("decode manifest: %w: %d bytes, at most %d", ErrTooLarge, len(b), lim.ManifestBytes)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w: %w", ErrLayout, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode manifest: %w: data after the JSON value", ErrLayout)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("decode manifest: %w: schemaVersion %d, want 2", ErrLayout, m.SchemaVersion)
	}
	if m.MediaType == "" {
		m.MediaType = mediaType
	}
	switch m.MediaType {
	case MediaTypeOCIManifest, MediaTypeDockerManifest, MediaTypeOCIIndex, MediaTypeDockerList, "":
	default:
		return nil, fmt.Errorf("decode manifest: %w: media type %q", ErrLayout, m.MediaType)
	}
	if m.IsIndex() {
		if len(m.Manifests) > lim.Layers {
			return nil, fmt.Errorf("decode manifest: %w: index lists %d manifests, at most %d", ErrTooLarge, len(m.Manifests), lim.Layers)
		}
		for i := range m.Manifests {
			if err := checkDescriptor(&m.Manifests[i], lim.ManifestBytes); err != nil {
				return nil, fmt.Errorf("decode manifest: manifests[%d]: %w", i, err)
			}
		}
		return &m, nil
	}
	if m.Config == nil {
		return nil, fmt.Errorf("decode manifest: %w: no config", ErrLayout)
	}
	if err := checkDescriptor(m.Config, lim.ManifestBytes); err != nil {
		return nil, fmt.Errorf("decode manifest: config: %w", err)
	}
	if len(m.Layers) > lim.Layers {
		return nil, fmt.Errorf("decode manifest: %w: %d layers, at most %d", ErrTooLarge, len(m.Layers), lim.Layers)
	}
	for i := range m.Layers {
		if err := checkDescriptor(&m.Layers[i], lim.layerBytes()); err != nil {
			return nil, fmt.Errorf("decode manifest: layers[%d]: %w", i, err)
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(m.Subject, lim.ManifestBytes); err != nil {
			return nil, fmt.Errorf("decode manifest: subject: %w", err)
		}
	}
	return &m, nil
}

func checkDescriptor(d *Descriptor, max int64) error {
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrLayout, d.Digest, err)
	}
	if dg.Algorithm() != digest.SHA256 && dg.Algorithm() != digest.SHA512 {
		return fmt.Errorf("%w: digest %q: algorithm %s not accepted", ErrLayout, d.Digest, dg.Algorithm())
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: %s: negative size %d", ErrLayout, d.Digest, d.Size)
	}
	if d.Size > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLarge, d.Digest, d.Size, max)
	}
	return nil
}

// ChooseManifest picks the module's manifest from an index: one for
// os wasip1/wasi or architecture wasm first, else the only one that is not
// an attestation (buildx adds those as "unknown/unknown").
func ChooseManifest(idx *Manifest) (Descriptor, error) {
	var others []Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if d.MediaType != MediaTypeOCIManifest && d.MediaType != MediaTypeDockerManifest {
			continue
		}
		if p := d.Platform; p != nil && (p.Architecture == "wasm" || strings.HasPrefix(p.OS, "wasi")) {
			return d, nil
		}
		others = append(others, d)
	}
	switch len(others) {
	case 1:
		return others[0], nil
	case 0:
		return Descriptor{}, fmt.Errorf("choose manifest: %w: the index lists no image manifest", ErrLayout)
	default:
		return Descriptor{}, fmt.Errorf("choose manifest: %w: the index lists %d image manifests and none for wasm/wasi; name one by digest", ErrLayout, len(others))
	}
}

// ModuleLayer says where m keeps the module: its layout and the layer.
func ModuleLayer(m *Manifest) (layout string, layer Descriptor, err error) {
	if m.Config != nil && m.Config.MediaType == MediaTypeWasmConfig {
		var wasm []Descriptor
		for _, l := range m.Layers {
			if l.MediaType == MediaTypeWasm {
				wasm = append(wasm, l)
			}
		}
		if len(wasm) != 1 {
			return "", Descriptor{}, fmt.Errorf("module layer: %w: a Wasm artifact needs exactly one %s layer, this one has %d", ErrLayout, MediaTypeWasm, len(wasm))
		}
		if _, ok := m.Annotations[AnnotationToolManifest]; ok {
			return LayoutNanoVM, wasm[0], nil
		}
		return LayoutWasm, wasm[0], nil
	}
	var tars []Descriptor
	for _, l := range m.Layers {
		switch l.MediaType {
		case MediaTypeOCILayerGzip, MediaTypeOCILayer, MediaTypeDockerLayerGzip:
			tars = append(tars, l)
		case MediaTypeWasm:
			// A Wasm layer in an image manifest without the Wasm config
			// (some tools push that way): take it when it is the only one.
			if len(m.Layers) == 1 {
				return LayoutWasm, l, nil
			}
		}
	}
	switch len(tars) {
	case 1:
		return LayoutImage, tars[0], nil
	case 0:
		cfg := ""
		if m.Config != nil {
			cfg = m.Config.MediaType
		}
		return "", Descriptor{}, fmt.Errorf("module layer: %w: config %q with no %s or tar layer", ErrLayout, cfg, MediaTypeWasm)
	default:
		// FROM scratch + COPY makes one layer; several would need
		// overlay semantics (whiteouts, later wins) to read honestly.
		return "", Descriptor{}, fmt.Errorf("module layer: %w: %d tar layers; an image built FROM scratch with COPY plugin.wasm / has one", ErrLayout, len(tars))
	}
}

// ExtractPlugin reads the file plugin.wasm at the root of a tar layer
// (gzip-compressed unless mediaType is the plain tar), in memory. It
// refuses a layer with an entry whose name has a ".." element, a
// plugin.wasm that is not a regular file or appears twice, more than
// lim.TarEntries entries, a module above lim.ModuleBytes, or more
// decompressed bytes in all than the module bound plus 1 MiB (a tar bomb).
func ExtractPlugin(layer []byte, mediaType string, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	var r io.Reader = bytes.NewReader(layer)
	if mediaType != MediaTypeOCILayer {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w: gzip: %w", PluginFile, ErrLayout, err)
		}
		defer zr.Close()
		r = zr
	}
	budget := &capReader{r: r, left: lim.layerBytes()}
	tr := tar.NewReader(budget)
	var module []byte
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if budget.over {
				return nil, fmt.Errorf("extract %s: %w: the layer decompresses to more than %d bytes", PluginFile, ErrTooLarge, lim.layerBytes())
			}
			return nil, fmt.Errorf("extract %s: %w: tar: %w", PluginFile, ErrLayout, err)
		}
		if n >= lim.TarEntries {
			return nil, fmt.Errorf("extract %s: %w: more than %d tar entries", PluginFile, ErrTooLarge, lim.TarEntries)
		}
		name := strings.TrimPrefix(h.Name, "./")
		name = strings.TrimPrefix(name, "/")
		for _, el := range strings.Split(h.Name, "/") {
			if el == ".." {
				return nil, fmt.Errorf("extract %s: %w: entry %q leaves the layer's root", PluginFile, ErrLayout, jsonlimit.Excerpt(h.Name, maxNameExcerpt))
			}
		}
		if path.Clean("/"+name) != "/"+PluginFile {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("extract %s: %w: entry %q is not a regular file (type %q)", PluginFile, ErrLayout, jsonlimit.Excerpt(h.Name, maxNameExcerpt), h.Typeflag)
		}
		if module != nil {
			return nil, fmt.Errorf("extract %s: %w: the layer holds it twice", PluginFile, ErrLayout)
		}
		if h.Size > lim.ModuleBytes {
			return nil, fmt.Errorf("extract %s: %w: %d bytes, the module limit is %d (--max-module-bytes)", PluginFile, ErrTooLarge, h.Size, lim.ModuleBytes)
		}
		buf := bytes.NewBuffer(make([]byte, 0, min(h.Size, 1<<20)))
		if _, err := io.Copy(buf, io.LimitReader(tr, lim.ModuleBytes+1)); err != nil {
			if budget.over {
				return nil, fmt.Errorf("extract %s: %w: the layer decompresses to more than %d bytes", PluginFile, ErrTooLarge, lim.layerBytes())
			}
			return nil, fmt.Errorf("extract %s: %w: tar: %w", PluginFile, ErrLayout, err)
		}
		module = buf.Bytes()
	}
	if budget.over {
		return nil, fmt.Errorf("extract %s: %w: the layer decompresses to more than %d bytes", PluginFile, ErrTooLarge, lim.layerBytes())
	}
	if module == nil {
		return nil, fmt.Errorf("extract %s: %w: the layer has no /%s", PluginFile, ErrLayout, PluginFile)
	}
	return module, nil
}

// maxNameExcerpt bounds how much of a layer entry's name an error quotes.
const maxNameExcerpt = 100

// capReader fails once more than left bytes are read through it.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
