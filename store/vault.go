package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// RefPrefix starts every secret reference: vault://secret/<id>.
const RefPrefix = "vault://secret/"

// VaultKeyEnv is the environment variable holding the vault key.
const VaultKeyEnv = "NANO_VM_MCP_VAULT_KEY"

// checkSecretID accepts ids of 1..128 characters from [A-Za-z0-9._-].
func checkSecretID(id string) error {
	if id == "" || len(id) > MaxSecretIDBytes {
		return fmt.Errorf("%w: a secret id must be 1..%d characters from [A-Za-z0-9._-]; %s is %d bytes", ErrInvalidRef, MaxSecretIDBytes, Clip(id), len(id))
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: secret id %s contains %q; allowed are [A-Za-z0-9._-]", ErrInvalidRef, Clip(id), c)
		}
	}
	return nil
}

// RefFor returns the reference of secret id: vault://secret/<id>.
func RefFor(id string) string { return RefPrefix + id }

// ParseRef returns the id in a vault://secret/<id> reference, or
// ErrInvalidRef.
func ParseRef(ref string) (string, error) {
	id, ok := strings.CutPrefix(ref, RefPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %s does not start with %s", ErrInvalidRef, Clip(ref), RefPrefix)
	}
	if err := checkSecretID(id); err != nil {
		return "", err
	}
	return id, nil
}

// Vault encrypts secrets with AES-256-GCM before they reach a SecretStore
// and decrypts them on resolution. The secret id is the GCM additional
// data, so a ciphertext moved to another id does not decrypt. It is safe
// for concurrent use.
type Vault struct {
	st   SecretStore
	aead cipher.AEAD

	mu   sync.RWMutex
	refs map[string]refInfo // id → public part, for projections
}

type refInfo struct {
	salt       string
	tombstoned bool
}

// NewVault returns a vault over st with a 32-byte key, loading the public
// part (salt, tombstone) of every stored secret so Ref never touches the
// store. Every write to st's secrets must then go through this Vault, or
// Ref misses them.
func NewVault(st SecretStore, key []byte) (*Vault, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("new vault: key is %d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new vault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("new vault: %w", err)
	}
	recs, err := st.Secrets(context.Background())
	if err != nil {
		return nil, fmt.Errorf("new vault: %w", err)
	}
	v := &Vault{st: st, aead: aead, refs: make(map[string]refInfo, len(recs))}
	for _, r := range recs {
		v.refs[r.ID] = refInfo{salt: r.Salt, tombstoned: r.Tombstoned}
	}
	return v, nil
}

func additionalData(id string) []byte { return []byte("nano-vm-mcp/vault/v1\x00" + id) }

// Put encrypts value and stores it under id, returning its reference.
// Putting an existing id replaces the value and keeps the salt; an erased
// id returns ErrTombstoned.
func (v *Vault) Put(ctx context.Context, id, value string) (string, error) {
	if err := checkSecretID(id); err != nil {
		return "", fmt.Errorf("put secret: %w", err)
	}
	v.mu.RLock()
	info, known := v.refs[id]
	v.mu.RUnlock()
	if known && info.tombstoned {
		return "", fmt.Errorf("put secret %q: %w", id, ErrTombstoned)
	}
	if !known {
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", fmt.Errorf("put secret %q: salt: %w", id, err)
		}
		info.salt = hex.EncodeToString(salt)
	}
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("put secret %q: nonce: %w", id, err)
	}
	ct := v.aead.Seal(nil, nonce, []byte(value), additionalData(id))
	if err := v.st.PutSecret(ctx, SecretRecord{ID: id, Salt: info.salt, Nonce: nonce, Ciphertext: ct}); err != nil {
		if errors.Is(err, ErrTombstoned) {
			v.remember(id, refInfo{salt: info.salt, tombstoned: true})
		}
		return "", err
	}
	v.mu.Lock()
	if cur, ok := v.refs[id]; !ok || !cur.tombstoned {
		v.refs[id] = refInfo{salt: info.salt}
	}
	v.mu.Unlock()
	return RefFor(id), nil
}

func (v *Vault) remember(id string, info refInfo) {
	v.mu.Lock()
	v.refs[id] = info
	v.mu.Unlock()
}

// Resolve returns the value behind a reference: ErrTombstoned after Erase,
// ErrNotFound for an unknown id, ErrInvalidRef for a malformed ref.
func (v *Vault) Resolve(ctx context.Context, ref string) (string, error) {
	id, err := ParseRef(ref)
	if err != nil {
		return "", fmt.Errorf("resolve secret: %w", err)
	}
	rec, err := v.st.Secret(ctx, id)
	if err != nil {
		return "", fmt.Errorf("resolve secret: %w", err)
	}
	if rec.Tombstoned {
		return "", fmt.Errorf("resolve secret %q: %w", id, ErrTombstoned)
	}
	pt, err := v.aead.Open(nil, rec.Nonce, rec.Ciphertext, additionalData(id))
	if err != nil {
		return "", fmt.Errorf("resolve secret %q: decrypt (wrong key or tampered record): %w", id, err)
	}
	return string(pt), nil
}

// Erase destroys the value of secret id and tombstones its ref. ErrNotFound
// for an unknown id; erasing twice is a no-op.
func (v *Vault) Erase(ctx context.Context, id string) error {
	rec, err := v.st.EraseSecret(ctx, id)
	if err != nil {
		return err
	}
	v.remember(id, refInfo{salt: rec.Salt, tombstoned: true})
	return nil
}

// Ref returns the public part of secret id for projections: its salt and
// whether it was erased. An unknown id returns "", false.
func (v *Vault) Ref(id string) (salt string, tombstoned bool) {
	v.mu.RLock()
	info := v.refs[id]
	v.mu.RUnlock()
	return info.salt, info.tombstoned
}

// ParseKey decodes a 32-byte key given as 64 hex digits or as standard or
// URL-safe base64 (padded or not).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("parse vault key: want 32 bytes as 64 hex digits or base64")
}

// KeyFromEnv reads the vault key from NANO_VM_MCP_VAULT_KEY. ok is false
// when the variable is unset or empty.
func KeyFromEnv() (key []byte, ok bool, err error) {
	s := os.Getenv(VaultKeyEnv)
	if s == "" {
		return nil, false, nil
	}
	k, err := ParseKey(s)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", VaultKeyEnv, err)
	}
	return k, true, nil
}

// LoadOrCreateKeyFile reads a key file (hex or base64), or creates it with
// a fresh random key and mode 0600 when it does not exist. A key file that
// group or others can access is refused, as ssh refuses such private keys.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create vault key %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		serr := f.Sync()
		cerr := f.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("create vault key %q: %w", path, EnvError(err))
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create vault key %q: %w", path, EnvError(err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read vault key %q: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read vault key %q: mode %v is accessible by group or others; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read vault key %q: %w", path, err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("read vault key %q: %w", path, err)
	}
	return k, nil
}
