package oci_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/oci/ocitest"
)

func TestExtractPlugin(t *testing.T) {
	mod := []byte("\x00asm\x01\x00\x00\x00")
	big := bytes.Repeat([]byte{0}, 3<<20)
	for _, tc := range []struct {
		name    string
		layer   []byte
		want    error
		contain string
	}{
		{"root", ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: mod}), nil, ""},
		{"dot slash", ocitest.TarGz(ocitest.Entry{Name: "etc/x", Body: []byte("x")}, ocitest.Entry{Name: "./plugin.wasm", Body: mod}), nil, ""},
		{"missing", ocitest.TarGz(ocitest.Entry{Name: "other.wasm", Body: mod}), oci.ErrLayout, "has no /plugin.wasm"},
		{"nested is not root", ocitest.TarGz(ocitest.Entry{Name: "a/plugin.wasm", Body: mod}), oci.ErrLayout, "has no"},
		{"dotdot", ocitest.TarGz(ocitest.Entry{Name: "../plugin.wasm", Body: mod}), oci.ErrLayout, "leaves the layer's root"},
		// A long name is quoted clipped on a rune boundary, with its length.
		{"dotdot, long name clipped", ocitest.TarGz(ocitest.Entry{Name: "a" + strings.Repeat("é", 99) + "/../x", Body: mod}), oci.ErrLayout, "a" + strings.Repeat("é", 49) + "…(204 bytes in all)\" leaves"},
		{"dotdot elsewhere", ocitest.TarGz(ocitest.Entry{Name: "a/../../x", Body: mod}, ocitest.Entry{Name: "plugin.wasm", Body: mod}), oci.ErrLayout, "leaves"},
		{"symlink", ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), oci.ErrLayout, "not a regular file"},
		{"hardlink", ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Typeflag: tar.TypeLink, Linkname: "x"}), oci.ErrLayout, "not a regular file"},
		{"twice", ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: mod}, ocitest.Entry{Name: "/plugin.wasm", Body: mod}), oci.ErrLayout, "twice"},
		{"too large", ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: big}), oci.ErrTooLarge, "--max-module-bytes"},
		{"bomb", ocitest.TarGz(ocitest.Entry{Name: "junk", Body: big}, ocitest.Entry{Name: "plugin.wasm", Body: mod}), oci.ErrTooLarge, "decompresses to more than"},
		{"not gzip", []byte("hello"), oci.ErrLayout, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := oci.ExtractPlugin(tc.layer, oci.MediaTypeOCILayerGzip, oci.Limits{ModuleBytes: 1 << 20})
			if tc.want == nil {
				if err != nil || !bytes.Equal(got, mod) {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contain) {
				t.Fatalf("want %v containing %q, got %v", tc.want, tc.contain, err)
			}
		})
	}
	var many []ocitest.Entry
	for range 20 {
		many = append(many, ocitest.Entry{Name: "f", Body: []byte("x")})
	}
	if _, err := oci.ExtractPlugin(ocitest.TarGz(many...), oci.MediaTypeOCILayerGzip, oci.Limits{TarEntries: 10}); !errors.Is(err, oci.ErrTooLarge) {
		t.Fatalf("entries: %v", err)
	}
}

func TestDecodeManifest(t *testing.T) {
	d := `"sha256:` + strings.Repeat("a", 64) + `"`
	layer := `{"mediaType":"application/wasm","digest":` + d + `,"size":10}`
	cfg := `"config":{"mediaType":"application/vnd.wasm.config.v0+json","digest":` + d + `,"size":2}`
	for _, tc := range []struct {
		name, doc string
		want      error
	}{
		{"wasm", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` + cfg + `,"layers":[` + layer + `]}`, nil},
		{"version", `{"schemaVersion":1,` + cfg + `,"layers":[` + layer + `]}`, oci.ErrLayout},
		{"no config", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`, oci.ErrLayout},
		{"bad digest", `{"schemaVersion":2,` + cfg + `,"layers":[{"mediaType":"application/wasm","digest":"sha256:zz","size":1}]}`, oci.ErrLayout},
		{"negative size", `{"schemaVersion":2,` + cfg + `,"layers":[{"mediaType":"application/wasm","digest":` + d + `,"size":-1}]}`, oci.ErrLayout},
		{"huge layer", `{"schemaVersion":2,` + cfg + `,"layers":[{"mediaType":"application/wasm","digest":` + d + `,"size":99999999999}]}`, oci.ErrTooLarge},
		{"too many layers", `{"schemaVersion":2,` + cfg + `,"layers":[` + strings.Repeat(layer+",", 16) + layer + `]}`, oci.ErrTooLarge},
		{"trailing", `{"schemaVersion":2,` + cfg + `,"layers":[]} {}`, oci.ErrLayout},
		{"media type", `{"schemaVersion":2,"mediaType":"text/html",` + cfg + `}`, oci.ErrLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := oci.DecodeManifest([]byte(tc.doc), "", oci.Limits{})
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}
