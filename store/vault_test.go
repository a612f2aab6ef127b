package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// TestVaultNoPlaintextInFile ensures a secret's value appears nowhere in
// the database file, in any encoding, and the chain still verifies after
// the secret is erased.
func TestVaultNoPlaintextInFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nano.db")
	db := openAt(t, path, nil)
	v, err := store.NewVault(db, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "sk-live-PLAINTEXT-4242424242424242"
	ref, err := v.Put(ctx, "stripe", secret)
	if err != nil {
		t.Fatal(err)
	}
	// The runtime records refs, never values, in envelopes.
	if _, err := db.AppendEnvelope(ctx, store.Envelope{Payload: []byte(`{"key":"` + ref + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := v.Erase(ctx, "stripe"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindErase, Payload: []byte(`{"ref":"` + ref + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
		t.Fatalf("chain after erase: %+v, %v", rep, err)
	}
	if _, err := v.Put(ctx, "other", secret); err != nil { // live, not erased
		t.Fatal(err)
	}
	raw := store.FileAfterClose(t, db)
	for _, enc := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), hex.EncodeToString([]byte(secret)), "4242424242"} {
		if bytes.Contains(raw, []byte(enc)) {
			t.Errorf("database file contains %q", enc)
		}
	}
}

// TestKeyFile ensures a key file is created with mode 0600, read back
// identically, and refused when others can read it or it holds no key.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.key")
	k1, err := store.LoadOrCreateKeyFile(path)
	if err != nil || len(k1) != 32 {
		t.Fatalf("create = %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, err := store.LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload = %x, %v; want %x", k2, err, k1)
	}
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{name: "world readable", content: hex.EncodeToString(k1), mode: 0o644, wantErr: "group or others"},
		{name: "not a key", content: "hello", mode: 0o600, wantErr: "32 bytes"},
		{name: "short key", content: hex.EncodeToString(k1[:16]), mode: 0o600, wantErr: "32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := store.LoadOrCreateKeyFile(p); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LoadOrCreateKeyFile = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestKeyFromEnv ensures the environment key is read as hex or base64,
// absent is not an error, and a malformed key is.
func TestKeyFromEnv(t *testing.T) {
	key := bytes.Repeat([]byte{0xAB}, 32)
	tests := []struct {
		name    string
		value   string
		wantOK  bool
		wantErr bool
	}{
		{name: "unset", value: "", wantOK: false},
		{name: "hex", value: hex.EncodeToString(key), wantOK: true},
		{name: "hex with newline", value: hex.EncodeToString(key) + "\n", wantOK: true},
		{name: "base64", value: base64.StdEncoding.EncodeToString(key), wantOK: true},
		{name: "base64url raw", value: base64.RawURLEncoding.EncodeToString(key), wantOK: true},
		{name: "too short", value: hex.EncodeToString(key[:31]), wantOK: true, wantErr: true},
		{name: "garbage", value: "not a key", wantOK: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(store.VaultKeyEnv, tc.value)
			got, ok, err := store.KeyFromEnv()
			if ok != tc.wantOK || (err != nil) != tc.wantErr {
				t.Fatalf("KeyFromEnv = %x, %v, %v", got, ok, err)
			}
			if ok && !tc.wantErr && !bytes.Equal(got, key) {
				t.Fatalf("key = %x, want %x", got, key)
			}
		})
	}
}
