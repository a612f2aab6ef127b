package oci_test

import (
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/oci/ocitest"
)

// FuzzDecodeManifest: whatever a registry serves as a manifest decodes or
// is refused, and a decoded one always yields a layer choice or an error,
// never a panic.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.wasm.config.v0+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[{"mediaType":"application/wasm","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":8}],"annotations":{"dev.nanovm.tool.manifest":"{}"}}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2,"platform":{"os":"wasip1","architecture":"wasm"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := oci.DecodeManifest(b, "", oci.Limits{})
		if err != nil {
			return
		}
		if m.IsIndex() {
			_, _ = oci.ChooseManifest(m)
			return
		}
		_, l, err := oci.ModuleLayer(m)
		if err == nil && (l.Size < 0 || l.Size > 65<<20) {
			t.Fatalf("accepted a layer of %d bytes", l.Size)
		}
	})
}

// FuzzExtractPlugin: a hostile tar layer yields a module within the bound
// or an error, never a panic or more than the bound.
func FuzzExtractPlugin(f *testing.F) {
	f.Add(ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: []byte("\x00asm\x01\x00\x00\x00")}), false)
	f.Add(ocitest.TarGz(ocitest.Entry{Name: "../plugin.wasm", Body: []byte("x")}), true)
	f.Fuzz(func(t *testing.T, b []byte, plain bool) {
		mt := oci.MediaTypeOCILayerGzip
		if plain {
			mt = oci.MediaTypeOCILayer
		}
		m, err := oci.ExtractPlugin(b, mt, oci.Limits{ModuleBytes: 1 << 16})
		if err == nil && len(m) > 1<<16 {
			t.Fatalf("extracted %d bytes above the bound", len(m))
		}
	})
}
