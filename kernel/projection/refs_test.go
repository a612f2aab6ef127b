package projection

import "testing"

// vault is a small in-memory Refs: the vault proper lives outside the kernel,
// and the projection only needs its two answers.
type vault map[string]struct {
	salt       string
	tombstoned bool
}

func (v vault) Ref(id string) (string, bool) {
	e := v[id]
	return e.salt, e.tombstoned
}

// Ensure IsRef accepts exactly one whole reference with a well-formed id.
func TestIsRef(t *testing.T) {
	tests := []struct {
		name, in, id string
		ok           bool
	}{
		{name: "simple", in: "vault://secret/abc", id: "abc", ok: true},
		{name: "all id characters", in: "vault://secret/A-z_0.9", id: "A-z_0.9", ok: true},
		{name: "empty id", in: "vault://secret/"},
		{name: "embedded", in: "key is vault://secret/abc"},
		{name: "trailing text", in: "vault://secret/abc def"},
		{name: "bad id character", in: "vault://secret/a/b"},
		{name: "other scheme", in: "vault://other/abc"},
		{name: "public form is not a ref", in: PublicRef("abc", "", false)},
		{name: "empty", in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := IsRef(tc.in)
			if id != tc.id || ok != tc.ok {
				t.Fatalf("IsRef(%q) = %q, %v; want %q, %v", tc.in, id, ok, tc.id, tc.ok)
			}
		})
	}
}

// Ensure the public form is the documented salted SHA-256, or the tombstone.
func TestPublicRef(t *testing.T) {
	tests := []struct {
		name, id, salt string
		tombstoned     bool
		want           string
	}{
		{name: "salted", id: "stripe-key", salt: "s1", want: "vault-ref:sha256:da0f606ec7a81ae3435f4ec8054a3656e43f3d814a8d6e7c633e33f0470cfa4d"},
		{name: "unknown ref has empty salt", id: "stripe-key", want: "vault-ref:sha256:1a68a3e992734b1a9481a644b37e36a58c274f323c0a3bd2a0e772932f479171"},
		{name: "tombstoned", id: "stripe-key", salt: "s1", tombstoned: true, want: Tombstone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PublicRef(tc.id, tc.salt, tc.tombstoned); got != tc.want {
				t.Fatalf("PublicRef = %s, want %s", got, tc.want)
			}
		})
	}
}
