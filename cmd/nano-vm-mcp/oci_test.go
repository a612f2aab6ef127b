package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/oci/ocitest"
)

// writeKeyPair writes a fresh ECDSA P-256 key pair as PEM files
// (cosign's key type) and returns their paths.
func writeKeyPair(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pder, _ := x509.MarshalPKIXPublicKey(k.Public())
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// ociCLI runs the binary with args and returns its stdout, failing the test
// on a non-zero exit.
func ociCLI(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nano-vm-mcp %v: %v\n%s%s", args, err, out, stderr.String())
	}
	return string(out)
}

// Ensure issue 17's acceptance end to end through MCP, with the real
// binary and a real registry: `tool push --sign` publishes and signs a
// tool; a client registers it by OCI reference, the server pulls and
// verifies it, a program runs it, and get_trace and verify_audit show the
// artifact by digest and its signer for the step. Refused, each saying
// why: a tampered blob (naming the digest), a signature by a key the
// policy does not trust, an unsigned artifact where a signature is
// required, a registry outside the allowed list, and a manifest in the
// artifact asking for more than the policy grants uploads.
func TestOCIToolsEndToEnd(t *testing.T) {
	reg := ocitest.Start(t)
	dir := t.TempDir()
	trustedKey, trustedPub := writeKeyPair(t, dir, "release")
	otherKey, _ := writeKeyPair(t, dir, "mallory")
	echo := testModule(t, "raw_echo")
	wasmPath := filepath.Join(dir, "echo.wasm")
	os.WriteFile(wasmPath, echo.Wasm, 0o644)
	// The tampered artifact's module differs (a custom section more), so
	// that corrupting its blob leaves the others' intact.
	tamperedWasm := append(append([]byte{}, echo.Wasm...), 0, 5, 4, 't', 'a', 'm', 'p')
	tamperedPath := filepath.Join(dir, "tampered.wasm")
	os.WriteFile(tamperedPath, tamperedWasm, 0o644)
	writeManifest := func(name string, edit func(map[string]any)) string {
		var m map[string]any
		json.Unmarshal(echo.Manifest, &m)
		m["name"] = name
		if edit != nil {
			edit(m)
		}
		b, _ := json.Marshal(m)
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, b, 0o644)
		return p
	}
	ref := func(repo string) string { return "oci://" + reg.Host + "/tools/" + repo + ":v1" }
	push := func(repo, manifest string, sign ...string) string {
		args := []string{"tool", "push", wasmPath, ref(repo), "--manifest", manifest}
		if repo == "tampered" {
			args[2] = tamperedPath
		}
		if len(sign) > 0 {
			args = append(args, "--sign", sign[0])
		}
		return ociCLI(t, args...)
	}
	out := push("echo", writeManifest("echo_oci", nil), trustedKey)
	if !strings.Contains(out, "pushed oci://"+reg.Host+"/tools/echo@sha256:") || !strings.Contains(out, "signed ") {
		t.Fatalf("push: %s", out)
	}
	push("unsigned", writeManifest("unsigned_oci", nil))
	push("mallory", writeManifest("mallory_oci", nil), otherKey)
	push("greedy", writeManifest("greedy_oci", func(m map[string]any) {
		m["capabilities"] = []any{"nanovm:http"}
		m["allowed_hosts"] = []any{"api.example.com"}
	}), trustedKey)
	// Signed, then its module blob corrupted in the registry's storage.
	push("tampered", writeManifest("tampered_oci", func(m map[string]any) { m["version"] = "9" }), trustedKey)
	layer := oci.SHA256Digest(tamperedWasm)
	if err := os.WriteFile(reg.BlobPath(layer), append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, len(tamperedWasm)-8)...), 0o644); err != nil {
		t.Fatal(err)
	}

	policy := fmt.Sprintf(`{"policy_id":"oci-e2e","version":"1","tool_capabilities":{},
"uploads":{"default":{"capabilities":["nanovm:log"]}},
"oci":{"registries":[{"host":%q,"repositories":["tools/"]}],"require_signature":true,
"trusted_keys":[{"id":"release","public_key":%q}]}}`, reg.Host, filepath.Base(trustedPub))
	policyPath := filepath.Join(dir, "policy.json")
	os.WriteFile(policyPath, []byte(policy), 0o644)

	db := filepath.Join(t.TempDir(), "oci.db")
	env := append(e2eEnv(), "NANO_VM_MCP_TOOLS_DIR=")
	a := startAttacker(t, env, "--transport", "stdio", "--db", db, "--policy", policyPath, "--no-bundled-tools")

	// Pushed, signed, pulled, verified...
	rec := a.mustSucceed("register_tool", map[string]any{"oci": ref("echo")})
	prov, _ := rec["provenance"].(map[string]any)
	pinned, _ := prov["ref"].(string)
	if rec["name"] != "echo_oci" || rec["source"] != "upload" || !strings.HasPrefix(pinned, "oci://"+reg.Host+"/tools/echo@sha256:") ||
		!strings.HasPrefix(fmt.Sprint(prov["signer"]), "key release (sha256:") || prov["signer_id"] != "release" {
		t.Fatalf("register_tool: %v", rec)
	}
	// ...and run.
	run := a.mustSucceed("run_program", map[string]any{"program": map[string]any{"name": "p", "steps": []any{
		map[string]any{"id": "echo", "type": "tool", "tool": "echo_oci", "args": map[string]any{"raw": `{"hello":"oci"}`}, "is_terminal": true},
	}}})
	traceID, _ := run["trace_id"].(string)
	if run["status"] != "success" || traceID == "" {
		t.Fatalf("run_program: %v", run)
	}
	trace := a.mustSucceed("get_trace", map[string]any{"trace_id": traceID})
	steps, _ := trace["steps"].([]any)
	if len(steps) != 1 {
		t.Fatalf("get_trace: %v", trace)
	}
	tool, _ := steps[0].(map[string]any)["tool"].(map[string]any)
	if tool["origin"] != pinned || tool["signer"] != prov["signer"] {
		t.Fatalf("get_trace step tool: %v, want origin %s signer %v", tool, pinned, prov["signer"])
	}
	ver := a.mustSucceed("verify_audit", map[string]any{"trace_id": traceID})
	vt, _ := ver["tools"].([]any)
	if ver["ok"] != true || len(vt) != 1 || vt[0].(map[string]any)["tool_origin"] != pinned || vt[0].(map[string]any)["tool_signer"] != prov["signer"] {
		t.Fatalf("verify_audit: %v", ver)
	}

	// Each refusal names what and why.
	for _, tc := range []struct {
		name string
		args map[string]any
		want []string
	}{
		{"tampered digest", map[string]any{"oci": ref("tampered")}, []string{"digest mismatch", layer}},
		{"untrusted key", map[string]any{"oci": ref("mallory")}, []string{"requires a signature", "does not trust"}},
		{"unsigned", map[string]any{"oci": ref("unsigned")}, []string{"oci.require_signature requires a signature", "no Sigstore bundle"}},
		{"registry not allowed", map[string]any{"oci": "oci://localhost:" + strings.Split(reg.Host, ":")[1] + "/tools/echo:v1"}, []string{"registry localhost:", "not in the policy's oci.registries"}},
		{"repository not allowed", map[string]any{"oci": "oci://" + reg.Host + "/other/echo:v1"}, []string{`repository "other/echo"`}},
		{"asks for more than granted", map[string]any{"oci": ref("greedy")}, []string{"capabilities", "nanovm:http", "is not granted to this upload"}},
	} {
		out, isErr := a.call("register_tool", tc.args)
		text := fmt.Sprint(out)
		if !isErr {
			t.Errorf("%s: accepted: %v", tc.name, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: error %s does not say %q", tc.name, text, w)
			}
		}
	}
	// Nothing refused was registered.
	list := a.mustSucceed("list_tools", map[string]any{})
	if tl, _ := list["tools"].([]any); len(tl) != 1 {
		t.Fatalf("list_tools after refusals: %v", list)
	}
}

// Ensure the operator's `tool pull` loads a hyper-mcp plugin image (FROM
// scratch, COPY plugin.wasm /, a Docker gzip layer) as an operator tool,
// from a registry no client may name, and records the artifact by digest.
func TestOCIToolPullPluginImage(t *testing.T) {
	reg := ocitest.Start(t)
	plugin := testModule(t, "extism_v1")
	layer := ocitest.TarGz(ocitest.Entry{Name: "plugin.wasm", Body: plugin.Wasm})
	dgst, err := ocitest.PushImage(context.Background(), reg.Host, "hyper/echo", "latest", layer, oci.MediaTypeDockerLayerGzip, oci.MediaTypeDockerManifest)
	if err != nil {
		t.Fatal(err)
	}
	args := append(dbArgs(t), "--no-bundled-tools")
	manifest := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(manifest, []byte(`{"name":"hyper_echo","capabilities":["nanovm:log"]}`), 0o644)
	out := ociCLI(t, append([]string{"tool", "pull", "oci://" + reg.Host + "/hyper/echo:latest", "--manifest", manifest}, args...)...)
	want := "from oci://" + reg.Host + "/hyper/echo@" + dgst + ", unsigned"
	if !strings.Contains(out, "registered echo_v1@sha256:") || !strings.Contains(out, want) {
		t.Fatalf("tool pull: %s, want %q", out, want)
	}
	show := ociCLI(t, append([]string{"tool", "show", "echo_v1"}, args...)...)
	if !strings.Contains(show, `"source": "operator"`) || !strings.Contains(show, `"layout": "image"`) {
		t.Fatalf("tool show: %s", show)
	}
}

// Ensure `tool pull` beside a running server pulls through the server
// (the database's primary, over its operator channel): the server's own
// client then sees the tool as the operator's, with its provenance.
func TestOCIToolPullBesideServer(t *testing.T) {
	reg := ocitest.Start(t)
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	db := shortDB(t)
	p := startStdio(t, "primary", db, "2025-06-18")
	echo := testModule(t, "raw_echo")
	ref, _ := oci.ParseReference("oci://" + reg.Host + "/tools/echo:v2")
	dgst, err := oci.NewClient(oci.Options{}).Push(context.Background(), ref, echo.Wasm, []byte(`{"name":"echo_pulled"}`))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "tool", "pull", ref.String(), "--db", db, "--cache-dir", sharedCache)
	if code != 0 || !strings.Contains(out, "registered echo_pulled@sha256:") || !strings.Contains(out, ref.Pinned(dgst)) {
		t.Fatalf("tool pull beside the server: exit %d\n%s\n%s\nserver:\n%s", code, out, errOut, p.stderr)
	}
	got := p.mustCall(t, "get_tool", map[string]any{"name": "echo_pulled"})
	prov, _ := got["provenance"].(map[string]any)
	if got["source"] != "operator" || prov["ref"] != ref.Pinned(dgst) || prov["layout"] != "nanovm" {
		t.Fatalf("get_tool: %v", got)
	}
}
