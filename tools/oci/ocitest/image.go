package ocitest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Entry is one tar entry for TarGz.
type Entry struct {
	Name     string
	Body     []byte
	Typeflag byte   // tar.TypeReg when zero
	Linkname string // for links
	Size     int64  // header size when not len(Body) (a lying header)
}

// TarGz returns a gzip-compressed tar of entries, as docker build makes
// a layer (hyper-mcp's plugins: FROM scratch, COPY plugin.wasm /).
func TarGz(entries ...Entry) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Size: int64(len(e.Body)), Typeflag: e.Typeflag, Linkname: e.Linkname}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		_ = tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(e.Body)
		}
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}

// PushImage pushes an image of one layer (layerMediaType) under
// manifestMediaType (OCI or Docker v2) to host/repo:tag over plain HTTP,
// as docker push would, and returns the manifest's digest.
func PushImage(ctx context.Context, host, repo, tag string, layer []byte, layerMediaType, manifestMediaType string) (string, error) {
	r, err := remote.NewRepository(host + "/" + repo)
	if err != nil {
		return "", err
	}
	r.PlainHTTP = true
	cfgType := "application/vnd.oci.image.config.v1+json"
	if manifestMediaType == "application/vnd.docker.distribution.manifest.v2+json" {
		cfgType = "application/vnd.docker.container.image.v1+json"
	}
	ld := ocispec.Descriptor{MediaType: layerMediaType, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{ld.Digest.String()}}})
	cd := ocispec.Descriptor{MediaType: cfgType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	for _, b := range []struct {
		d ocispec.Descriptor
		v []byte
	}{{ld, layer}, {cd, cfg}} {
		if err := r.Push(ctx, b.d, bytes.NewReader(b.v)); err != nil {
			return "", fmt.Errorf("push blob: %w", err)
		}
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifestMediaType, "config": cd, "layers": []any{ld}})
	md := ocispec.Descriptor{MediaType: manifestMediaType, Digest: digest.FromBytes(man), Size: int64(len(man))}
	if err := r.PushReference(ctx, md, bytes.NewReader(man), tag); err != nil {
		return "", fmt.Errorf("push manifest: %w", err)
	}
	return md.Digest.String(), nil
}
