package runtime_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/oci/ocitest"
	"github.com/nanovm/nano-vm-mcp/tools/signature/signaturetest"
)

func writePub(t *testing.T, dir, name string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	p := filepath.Join(dir, name)
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	return p
}

// Ensure the oci section decodes strictly, refuses each bad entry naming
// its field, reads key files relative to the policy file, and that the
// policy hash changes with a key file's content.
func TestParsePolicyOCI(t *testing.T) {
	dir := t.TempDir()
	writePub(t, dir, "k.pub")
	os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("not a key"), 0o644)
	base := `"policy_id":"p","version":"1","tool_capabilities":{},"uploads":{}`
	for _, tc := range []struct{ name, oci, wantErr string }{
		{"empty", `{}`, ""},
		{"full", `{"registries":[{"host":"127.0.0.1:5000","repositories":["tools/"],"require_signature":true,"signers":["k"]}],"require_signature":true,"trusted_keys":[{"id":"k","public_key":"k.pub"}],"tools":{"t":{"signers":["k"]}}}`, ""},
		{"unknown field", `{"registry":[]}`, `unknown field "registry"`},
		{"bad host", `{"registries":[{"host":"a/b"}]}`, "oci.registries[0].host"},
		{"missing key file", `{"trusted_keys":[{"id":"k","public_key":"nope.pub"}]}`, "oci.trusted_keys[0].public_key"},
		{"bad key file", `{"trusted_keys":[{"id":"k","public_key":"bad.pub"}]}`, "oci.trusted_keys[0].public_key: parse public key"},
		{"duplicate id", `{"trusted_keys":[{"id":"k","public_key":"k.pub"},{"id":"k","public_key":"k.pub"}]}`, "oci.trusted_keys[1].id"},
		{"identity without root", `{"trusted_identities":[{"id":"i","issuer":"https://x","subject":"a@b"}]}`, "needs trusted_root"},
		{"unknown signer", `{"tools":{"t":{"signers":["nobody"]}}}`, `oci.tools.t.signers: "nobody"`},
		{"bad root", `{"trusted_root":"k.pub"}`, "oci.trusted_root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "policy.json")
			os.WriteFile(path, []byte(`{`+base+`,"oci":`+tc.oci+`}`), 0o644)
			_, err := runtime.LoadPolicy(path)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(`{`+base+`,"oci":{"trusted_keys":[{"id":"k","public_key":"k.pub"}]}}`), 0o644)
	p1, err := runtime.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	writePub(t, dir, "k.pub")
	p2, err := runtime.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Hash() == p2.Hash() {
		t.Fatal("a new trusted key left the policy hash unchanged")
	}
	if _, err := runtime.ParsePolicy([]byte(`{` + base + `,"uploads":{"tools":{"u":{"capabilities":[],"signed_by":["k"]}}}}`)); err == nil || !strings.Contains(err.Error(), "signed_by") {
		t.Fatalf("signed_by without oci: %v", err)
	}
}

// Ensure gate C applies the signature rules to every registration path
// and again at every resolve: a byte upload of a name that needs a
// signature, an OCI version unsigned or signed by a signer outside the
// rule's list are denied; uploads.tools.*.signed_by grants its entry only
// to an artifact signed by one of its signers.
func TestPolicyOCIGrant(t *testing.T) {
	dir := t.TempDir()
	writePub(t, dir, "k.pub")
	writePub(t, dir, "j.pub")
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(`{"policy_id":"p","version":"1","tool_capabilities":{},
"uploads":{"tools":{"geo":{"capabilities":["nanovm:http"],"allowed_hosts":["api.example.com"],"signed_by":["k"]}}},
"oci":{"trusted_keys":[{"id":"k","public_key":"k.pub"},{"id":"j","public_key":"j.pub"}],"tools":{"strict":{"signers":["k"]}}}}`), 0o644)
	p, err := runtime.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &tools.Manifest{Name: "geo", Capabilities: []string{"nanovm:http"}}
	prov := func(signer string) *store.ToolProvenance {
		return &store.ToolProvenance{Origin: store.OriginOCI, Ref: "oci://r.example/x@sha256:" + strings.Repeat("a", 64), SignerID: signer, Signer: "key " + signer}
	}
	for _, tc := range []struct {
		name    string
		req     tools.GrantRequest
		wantErr string
		want    string
	}{
		{"signed by k gets the entry", tools.GrantRequest{Name: "geo", Source: store.SourceUpload, Manifest: m, Provenance: prov("k")}, "", "map[nanovm:http:upload-policy]"},
		{"signed by j gets the default", tools.GrantRequest{Name: "geo", Source: store.SourceUpload, Manifest: m, Provenance: prov("j")}, "", "map[nanovm:log:upload-default]"},
		{"bytes get the default", tools.GrantRequest{Name: "geo", Source: store.SourceUpload, Manifest: m}, "", "map[nanovm:log:upload-default]"},
		{"strict as bytes", tools.GrantRequest{Name: "strict", Source: store.SourceUpload, Manifest: m}, "an upload of bytes carries none", ""},
		{"strict unsigned", tools.GrantRequest{Name: "strict", Source: store.SourceOperator, Manifest: m, Provenance: prov("")}, "was not signed by a trusted key", ""},
		{"strict by j", tools.GrantRequest{Name: "strict", Source: store.SourceOperator, Manifest: m, Provenance: prov("j")}, "accept only k", ""},
		{"strict by k", tools.GrantRequest{Name: "strict", Source: store.SourceOperator, Manifest: &tools.Manifest{Name: "strict"}, Provenance: prov("k")}, "tool_capabilities", ""},
		{"operator file is the operator's", tools.GrantRequest{Name: "strict", Source: store.SourceOperator, Manifest: m}, "tool_capabilities", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := p.Grant(tc.req)
			if tc.wantErr != "" {
				// An operator tool the policy does not list is denied by
				// tool_capabilities, after the signature rules passed.
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) && !(tc.wantErr == "tool_capabilities" && strings.Contains(err.Error(), "does not allow")) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(g.Capabilities) != tc.want {
				t.Fatalf("grant %v, %v; want %s", g.Capabilities, err, tc.want)
			}
		})
	}
}

// Ensure a keyless signature (a certificate from a CA and a timestamp
// from a TSA, both in the trusted root file the policy names) verifies
// offline at registration through the runtime, the identity is what the
// record keeps, and a signed_by entry naming that identity grants more;
// a run's step record and envelope name the artifact and signer, and
// rewriting the signer in either is what verify_audit reports.
func TestRegisterOCIKeyless(t *testing.T) {
	reg := ocitest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	vs := signaturetest.New(t)
	os.WriteFile(filepath.Join(dir, "trusted_root.json"), vs.Root, 0o644)
	const issuer, subject = "https://token.actions.example", "https://ci.example/release.yml@refs/heads/main"
	mods := testModules(t)
	echo := mods["raw_echo"]
	client := oci.NewClient(oci.Options{})
	ref, _ := oci.ParseReference("oci://" + reg.Host + "/tools/echo:v1")
	dgst, err := client.Push(ctx, ref, echo.Wasm, []byte(`{"name":"echo_ci","capabilities":["nanovm:log"]}`))
	if err != nil {
		t.Fatal(err)
	}
	pinned := oci.Reference{Registry: ref.Registry, Repository: ref.Repository, Digest: dgst}
	_, raw, err := client.Manifest(ctx, pinned)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.AttachBundle(ctx, pinned, dgst, vs.Sign(t, issuer, subject, raw)); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(fmt.Sprintf(`policy_id: keyless
tool_capabilities: {}
uploads:
  tools:
    echo_ci: {capabilities: ["nanovm:log"], signed_by: ["release-ci"]}
  default: {capabilities: []}
oci:
  registries: [{host: %q, require_signature: true}]
  trusted_root: trusted_root.json
  trusted_identities:
    - {id: release-ci, issuer: %q, subject: %q}
`, reg.Host, issuer, subject)), 0o644)
	dbPath := filepath.Join(t.TempDir(), "k.db")
	cfg := runtime.Config{DBPath: dbPath, PolicyPath: policy, NoBundledTools: true, CacheDir: "-"}
	rt, err := runtime.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rt.Close() }()
	recs, err := rt.RegisterToolOCI(ctx, ref.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := recs[0].Provenance
	if p == nil || p.SignerID != "release-ci" || !strings.Contains(p.Signer, subject) || p.Ref != ref.Pinned(dgst) || recs[0].Grants["nanovm:log"] != "upload-policy" {
		t.Fatalf("record %+v provenance %+v", recs[0], p)
	}
	got, err := rt.Tool(ctx, "echo_ci")
	if err != nil || got.Provenance == nil || got.Provenance.SignerID != "release-ci" {
		t.Fatalf("get_tool: %+v %v", got, err)
	}

	// A run of it: the step's record and envelope name the artifact and
	// signer, and a change to either is what verify_audit reports.
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: []byte(`{"name":"p","steps":[{"id":"e","type":"tool","tool":"echo_ci","args":{"raw":"{}"},"is_terminal":true}]}`)})
	if err != nil || res.Status != "success" {
		t.Fatalf("run: %+v %v", res, err)
	}
	envs, err := rt.Envelopes(ctx, res.TraceID)
	if err != nil || len(envs) == 0 || !strings.Contains(string(envs[0].Payload), `"tool_signer":"certificate release-ci`) || !strings.Contains(string(envs[0].Payload), `"tool_origin":"`+p.Ref+`"`) {
		t.Fatalf("envelopes: %v %v", envs, err)
	}
	rt.Close()
	// Step records are in step_log (the steps bucket refers to them).
	for _, bucket := range []string{"step_log", "envelopes"} {
		tamper(t, dbPath, bucket, "release.yml", "evilrel.yml")
		rt, err = runtime.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := rt.VerifyAudit(ctx, "")
		if err != nil || rep.OK {
			t.Fatalf("%s: signer rewritten, verify says %+v %v", bucket, rep, err)
		}
		rt.Close()
		tamper(t, dbPath, bucket, "evilrel.yml", "release.yml")
	}
	rt, err = runtime.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := rt.VerifyAudit(ctx, ""); err != nil || !rep.OK {
		t.Fatalf("restored: %+v %v", rep, err)
	}
}

// tamper replaces old by new in every value of bucket in the database
// file that holds it, and fails when none does.
func tamper(t *testing.T, path, bucket, old, new string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		type kv struct{ k, v []byte }
		var edits []kv
		b.ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(old)) {
				edits = append(edits, kv{bytes.Clone(k), bytes.ReplaceAll(v, []byte(old), []byte(new))})
			}
			return nil
		})
		for _, e := range edits {
			n++
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("tamper %s: %d values, %v", bucket, n, err)
	}
}

// Ensure a policy that requires signatures and trusts no signer warns.
func TestPolicyOCIWarning(t *testing.T) {
	p, err := runtime.ParsePolicy([]byte(`{"policy_id":"p","version":"1","tool_capabilities":{},"oci":{"require_signature":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(p.Warnings(), "\n"); !strings.Contains(w, "oci.require_signature requires a signature, and oci names no trusted_keys or trusted_root") {
		t.Fatalf("warnings: %q", w)
	}
}
