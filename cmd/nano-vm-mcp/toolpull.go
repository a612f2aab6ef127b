package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nanovm/nano-vm-mcp/tools"
	"github.com/nanovm/nano-vm-mcp/tools/oci"
	"github.com/nanovm/nano-vm-mcp/tools/signature"
)

// cmdToolPull registers a tool from an OCI registry as the operator's;
// see the "pull" entry of commandTable.
func cmdToolPull(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	manifestPath := fs.String("manifest", "", "the tool's manifest, for an artifact that carries none (a Wasm artifact, a plugin image)")
	name := fs.String("name", "", "the tool's name, for an artifact that carries no manifest (default: the repository's last element)")
	fs.Var(&c.insecure, "insecure-registry", "a registry HOST[:PORT] to reach over plain HTTP, repeated for each (loopback always may)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("tool pull oci://HOST/REPO:TAG: want one reference, got %d arguments", len(pos))
	}
	if _, err := oci.ParseReference(pos[0]); err != nil {
		return usagef("tool pull: %v", err)
	}
	var manifest []byte
	switch {
	case *manifestPath != "" && *name != "":
		return usagef("tool pull: give --manifest or --name, not both")
	case *manifestPath != "":
		if manifest, err = os.ReadFile(*manifestPath); err != nil {
			return fmt.Errorf("tool pull: %w", err)
		}
	case *name != "":
		manifest = fmt.Appendf(nil, `{"name":%q}`, *name)
	}
	ctx := context.Background()
	rt, err := c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	recs, err := rt.PullTool(ctx, pos[0], manifest)
	if err != nil {
		return fmt.Errorf("tool pull %s: %w", pos[0], err)
	}
	for _, rec := range recs {
		line := fmt.Sprintf("registered %s@sha256:%s", rec.Name, rec.ModuleSHA256)
		if p := rec.Provenance; p != nil {
			line += " from " + p.Ref
			if p.Signer != "" {
				line += ", signed by " + p.Signer
			} else {
				line += ", unsigned"
			}
		}
		fmt.Fprintln(cio.stdout, line)
	}
	return nil
}

// cmdToolPush publishes a module (and its manifest) as a Wasm OCI
// artifact, optionally signed; see the "push" entry of commandTable.
func cmdToolPush(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	manifestPath := fs.String("manifest", "", "the tool's manifest, carried in the artifact (annotation "+oci.AnnotationToolManifest+"); default manifest.json beside the module when there is one")
	keyPath := fs.String("sign", "", "sign the artifact with this PEM ECDSA P-256 private key (cosign's key type, unencrypted) and attach the Sigstore bundle as a referrer")
	fs.Var(&c.insecure, "insecure-registry", "a registry HOST[:PORT] to reach over plain HTTP, repeated for each (loopback always may)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || !strings.HasPrefix(pos[1], oci.Scheme) {
		return usagef("tool push FILE.wasm oci://HOST/REPO:TAG: want a module and a reference")
	}
	ref, err := oci.ParseReference(pos[1])
	if err != nil {
		return usagef("tool push: %v", err)
	}
	wasm, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("tool push: %w", err)
	}
	mp := *manifestPath
	if beside := filepath.Join(filepath.Dir(pos[0]), "manifest.json"); mp == "" && exists(beside) {
		mp = beside
	}
	var manifest []byte
	if mp != "" {
		raw, err := os.ReadFile(mp)
		if err != nil {
			return fmt.Errorf("tool push: %w", err)
		}
		// Checked as registration will check it, so that a broken
		// manifest is not published.
		if _, err := tools.ParseManifest(raw); err != nil {
			return fmt.Errorf("tool push %s: %w", mp, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return fmt.Errorf("tool push %s: %w", mp, err)
		}
		manifest = buf.Bytes()
	}
	var key crypto.Signer
	if *keyPath != "" {
		b, err := os.ReadFile(*keyPath)
		if err != nil {
			return fmt.Errorf("tool push: --sign: %w", err)
		}
		if key, err = signature.ParsePrivateKey(b); err != nil {
			return fmt.Errorf("tool push: --sign %s: %w", *keyPath, err)
		}
	}
	cred, err := oci.DockerCredentials()
	if err != nil {
		return err
	}
	client := oci.NewClient(oci.Options{InsecureRegistries: c.insecure, Credentials: cred})
	ctx := context.Background()
	dgst, err := client.Push(ctx, ref, wasm, manifest)
	if err != nil {
		return fmt.Errorf("tool push: %w", err)
	}
	fmt.Fprintf(cio.stdout, "pushed %s\n", ref.Pinned(dgst))
	if key == nil {
		return nil
	}
	pinned := oci.Reference{Registry: ref.Registry, Repository: ref.Repository, Digest: dgst}
	_, raw, err := client.Manifest(ctx, pinned)
	if err != nil {
		return fmt.Errorf("tool push: sign: %w", err)
	}
	bundle, err := signature.Sign(ctx, signature.SignOptions{Key: key}, raw)
	if err != nil {
		return fmt.Errorf("tool push: sign: %w", err)
	}
	if err := client.AttachBundle(ctx, pinned, dgst, bundle); err != nil {
		return fmt.Errorf("tool push: %w", err)
	}
	id, _ := signature.KeyID(key.Public())
	fmt.Fprintf(cio.stdout, "signed %s with key %s\n", ref.Pinned(dgst), id)
	return nil
}
