package storetest

import (
	"bytes"
	"errors"
	"strings"

	"github.com/nanovm/nano-vm-mcp/store"
)

// testSecrets ensures secret records round-trip, erase keeps only a
// tombstone with the salt, and an erased id cannot be reused.
func testSecrets(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	rec := store.SecretRecord{ID: "api-key", Salt: "salt", Nonce: []byte("nonce-123456"), Ciphertext: []byte("ciphertext")}
	if err := st.PutSecret(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := st.Secret(ctx, "api-key")
	if err != nil || !bytes.Equal(got.Ciphertext, rec.Ciphertext) || !bytes.Equal(got.Nonce, rec.Nonce) || got.Salt != "salt" || !got.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("Secret = %+v, %v", got, err)
	}
	list, err := st.Secrets(ctx)
	if err != nil || len(list) != 1 || list[0].Ciphertext != nil || list[0].Nonce != nil {
		t.Fatalf("Secrets must omit ciphertext: %+v, %v", list, err)
	}
	erased, err := st.EraseSecret(ctx, "api-key")
	if err != nil || !erased.Tombstoned || erased.Salt != "salt" || erased.Ciphertext != nil || !erased.ErasedAt.Equal(e.clock.Now()) {
		t.Fatalf("EraseSecret = %+v, %v", erased, err)
	}
	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{name: "erase unknown", op: func() error { _, err := st.EraseSecret(ctx, "nope"); return err }, wantErr: store.ErrNotFound},
		{name: "get unknown", op: func() error { _, err := st.Secret(ctx, "nope"); return err }, wantErr: store.ErrNotFound},
		{name: "erase twice", op: func() error { _, err := st.EraseSecret(ctx, "api-key"); return err }, wantErr: nil},
		{name: "reuse erased id", op: func() error { return st.PutSecret(ctx, rec) }, wantErr: store.ErrTombstoned},
		{name: "invalid id", op: func() error { return st.PutSecret(ctx, store.SecretRecord{ID: "a/b", Ciphertext: []byte("x")}) }, wantErr: store.ErrInvalidRef},
		{name: "no ciphertext", op: func() error { return st.PutSecret(ctx, store.SecretRecord{ID: "b"}) }, wantErr: errAny},
	}
	for _, tc := range tests {
		err := tc.op()
		if tc.wantErr == errAny {
			if err == nil {
				t.Errorf("%s: succeeded", tc.name)
			}
			continue
		}
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	got, err = st.Secret(ctx, "api-key")
	if err != nil || !got.Tombstoned || got.Ciphertext != nil || got.Nonce != nil {
		t.Fatalf("tombstone = %+v, %v", got, err)
	}
}

var errAny = errors.New("any error")

// testVault ensures the vault encrypts before storing, resolves refs,
// tombstones on erase, and binds each ciphertext to its id.
func testVault(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	key := bytes.Repeat([]byte{7}, 32)
	v, err := store.NewVault(st, key)
	if err != nil {
		t.Fatal(err)
	}
	const value = "sk-live-very-secret-value"
	ref, err := v.Put(ctx, "stripe", value)
	if err != nil || ref != "vault://secret/stripe" {
		t.Fatalf("Put = %q, %v", ref, err)
	}
	if _, err := v.Put(ctx, "other", "other-value"); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Secret(ctx, "stripe")
	if err != nil || bytes.Contains(rec.Ciphertext, []byte(value)) || strings.Contains(rec.Salt, value) {
		t.Fatalf("stored record holds the plaintext or is missing: %v", err)
	}
	if got, err := v.Resolve(ctx, ref); err != nil || got != value {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	salt, tomb := v.Ref("stripe")
	if salt == "" || tomb || salt != rec.Salt {
		t.Fatalf("Ref = %q, %v; want stored salt %q", salt, tomb, rec.Salt)
	}
	// Rotating keeps the salt, so projections stay stable.
	if _, err := v.Put(ctx, "stripe", "rotated"); err != nil {
		t.Fatal(err)
	}
	if s, _ := v.Ref("stripe"); s != salt {
		t.Errorf("rotation changed the salt")
	}
	// A ciphertext copied under another id must not decrypt.
	other, _ := st.Secret(ctx, "other")
	other.ID = "swapped"
	if err := st.PutSecret(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Resolve(ctx, "vault://secret/swapped"); err == nil {
		t.Fatalf("swapped ciphertext decrypted to %q", got)
	}
	// A second vault over the same store with another key cannot read it.
	wrong, err := store.NewVault(st, bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Resolve(ctx, ref); err == nil {
		t.Fatal("resolved with the wrong key")
	}
	if s, _ := wrong.Ref("stripe"); s != salt {
		t.Errorf("a new vault did not load refs from the store")
	}
	if err := v.Erase(ctx, "stripe"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{name: "resolve erased", err: func() error { _, err := v.Resolve(ctx, ref); return err }(), wantErr: store.ErrTombstoned},
		{name: "put erased", err: func() error { _, err := v.Put(ctx, "stripe", "x"); return err }(), wantErr: store.ErrTombstoned},
		{name: "erase unknown", err: v.Erase(ctx, "nope"), wantErr: store.ErrNotFound},
		{name: "resolve unknown", err: func() error { _, err := v.Resolve(ctx, "vault://secret/nope"); return err }(), wantErr: store.ErrNotFound},
		{name: "resolve malformed", err: func() error { _, err := v.Resolve(ctx, "https://x"); return err }(), wantErr: store.ErrInvalidRef},
		{name: "put bad id", err: func() error { _, err := v.Put(ctx, "../x", "v"); return err }(), wantErr: store.ErrInvalidRef},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.wantErr)
		}
	}
	if s, tomb := v.Ref("stripe"); s != salt || !tomb {
		t.Errorf("Ref after erase = %q, %v; want salt kept and tombstoned", s, tomb)
	}
	if _, err := store.NewVault(st, []byte("short")); err == nil {
		t.Error("NewVault accepted a short key")
	}
}
