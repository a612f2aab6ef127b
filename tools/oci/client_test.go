package oci_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/oci/ocitest"
)

var fakeModule = append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0}, 100)...)

func mustRef(t *testing.T, s string) oci.Reference {
	t.Helper()
	r, err := oci.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushedFake starts a registry and pushes fakeModule, with no manifest, to
// its repository tools/<name> under tag v1.
func pushedFake(t *testing.T, name string) (*ocitest.Registry, *oci.Client, oci.Reference) {
	t.Helper()
	reg := ocitest.Start(t)
	c := oci.NewClient(oci.Options{})
	ref := mustRef(t, "oci://"+reg.Host+"/tools/"+name+":v1")
	if _, err := c.Push(context.Background(), ref, fakeModule, nil); err != nil {
		t.Fatal(err)
	}
	return reg, c, ref
}

// TestPullLayouts pushes each layout the package reads to a real registry
// and pulls it back: ours (Wasm artifact + manifest annotation), the bare
// Wasm artifact, and hyper-mcp's images (OCI and Docker media types).
func TestPullLayouts(t *testing.T) {
	reg := ocitest.Start(t)
	ctx := context.Background()
	c := oci.NewClient(oci.Options{})
	manifest := []byte(`{"name":"greet","description":"hi"}`)

	ours := mustRef(t, "oci://"+reg.Host+"/tools/greet:v1")
	dg, err := c.Push(ctx, ours, fakeModule, manifest)
	if err != nil {
		t.Fatal(err)
	}
	bare := mustRef(t, "oci://"+reg.Host+"/tools/bare:v1")
	if _, err := c.Push(ctx, bare, fakeModule, nil); err != nil {
		t.Fatal(err)
	}
	layer := ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: fakeModule})
	if _, err := ocitest.PushImage(ctx, reg.Host, "hyper/oci", "latest", layer, oci.MediaTypeOCILayerGzip, oci.MediaTypeOCIManifest); err != nil {
		t.Fatal(err)
	}
	if _, err := ocitest.PushImage(ctx, reg.Host, "hyper/docker", "latest", ocitest.TarGz(ocitest.Entry{Name: "./plugin.wasm", Body: fakeModule}), oci.MediaTypeDockerLayerGzip, oci.MediaTypeDockerManifest); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref, layout string
		manifest          []byte
	}{
		{"ours by tag", ours.String(), oci.LayoutNanoVM, manifest},
		{"ours by digest", ours.Pinned(dg), oci.LayoutNanoVM, manifest},
		{"wasm artifact", bare.String(), oci.LayoutWasm, nil},
		{"image oci", "oci://" + reg.Host + "/hyper/oci:latest", oci.LayoutImage, nil},
		{"image docker", "oci://" + reg.Host + "/hyper/docker:latest", oci.LayoutImage, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := c.Pull(ctx, mustRef(t, tc.ref))
			if err != nil {
				t.Fatal(err)
			}
			if a.Layout != tc.layout || !bytes.Equal(a.Module, fakeModule) || !bytes.Equal(a.ToolManifest, tc.manifest) {
				t.Fatalf("got layout %q module %d bytes manifest %q", a.Layout, len(a.Module), a.ToolManifest)
			}
			if !strings.HasPrefix(a.Digest, "sha256:") || a.Pinned != a.Ref.Pinned(a.Digest) {
				t.Fatalf("digest %q pinned %q", a.Digest, a.Pinned)
			}
		})
	}
}

// TestPullTamperedBlob corrupts the module's blob in the registry's own
// storage: the pull is refused naming the digest.
func TestPullTamperedBlob(t *testing.T) {
	reg, c, ref := pushedFake(t, "t")
	ctx := context.Background()
	layerDigest := oci.SHA256Digest(fakeModule)
	evil := bytes.Clone(fakeModule)
	evil[len(evil)-1] = 1
	if err := os.WriteFile(reg.BlobPath(layerDigest), evil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.Pull(ctx, ref)
	if !errors.Is(err, oci.ErrDigestMismatch) || !strings.Contains(err.Error(), layerDigest) {
		t.Fatalf("want a digest mismatch naming %s, got %v", layerDigest, err)
	}
}

// TestPullBounds refuses what is above the limits before reading it.
func TestPullBounds(t *testing.T) {
	reg, c, ref := pushedFake(t, "big")
	ctx := context.Background()
	small := oci.NewClient(oci.Options{Limits: oci.Limits{ModuleBytes: 50}})
	if _, err := small.Pull(ctx, ref); !errors.Is(err, oci.ErrTooLarge) || !strings.Contains(err.Error(), "--max-module-bytes") {
		t.Fatalf("module above the limit: %v", err)
	}
	tiny := oci.NewClient(oci.Options{Limits: oci.Limits{ManifestBytes: 100}})
	if _, err := tiny.Pull(ctx, ref); !errors.Is(err, oci.ErrTooLarge) {
		t.Fatalf("manifest above the limit: %v", err)
	}
	if _, err := c.Pull(ctx, mustRef(t, "oci://"+reg.Host+"/tools/big:nope")); err == nil {
		t.Fatal("a missing tag pulled")
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"oci://127.0.0.1:5000/tools/greet:v1", "oci://127.0.0.1:5000/tools/greet:v1", true},
		{"oci://ghcr.io/a/b@sha256:" + strings.Repeat("a", 64), "oci://ghcr.io/a/b@sha256:" + strings.Repeat("a", 64), true},
		{"ghcr.io/a/b:v1", "", false},
		{"oci://ghcr.io/a/b", "", false},
		{"oci://ghcr.io/a/b@sha256:abc", "", false},
		{"oci://ghcr.io/A/b:v1", "", false},
	} {
		r, err := oci.ParseReference(tc.in)
		if (err == nil) != tc.ok || (tc.ok && r.String() != tc.want) {
			t.Errorf("%q: got %v %v", tc.in, r, err)
		}
		if err != nil && !errors.Is(err, oci.ErrReference) {
			t.Errorf("%q: %v is not ErrReference", tc.in, err)
		}
	}
	if !mustRef(t, "oci://localhost:5000/a:b").Loopback() || mustRef(t, "oci://ghcr.io/a:b").Loopback() {
		t.Fatal("loopback")
	}
}
