package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

func toolVersionKey(name, sha string) []byte {
	k := make([]byte, 0, len(name)+1+len(sha))
	k = append(k, name...)
	k = append(k, 0)
	return append(k, sha...)
}

// PrepareToolVersion checks a tool version before a backend stores it
// and returns the record's encoding: rec.Name is a valid id, module
// hashes to rec.ModuleSHA256, the manifest is JSON and the source known.
// A zero RegisteredAt is set to now (in UTC). Both backends call it, so
// they refuse the same records in the same words.
func PrepareToolVersion(rec *ToolRecord, module []byte, now time.Time) ([]byte, error) {
	if err := checkID("tool", rec.Name); err != nil {
		return nil, fmt.Errorf("put tool version: %w", err)
	}
	sum := sha256.Sum256(module)
	if got := hex.EncodeToString(sum[:]); got != rec.ModuleSHA256 {
		return nil, fmt.Errorf("put tool version %q: module hashes to %s, record says %q", rec.Name, got, rec.ModuleSHA256)
	}
	if len(rec.Manifest) > 0 && !json.Valid(rec.Manifest) {
		return nil, fmt.Errorf("put tool version %q: manifest is not valid JSON", rec.Name)
	}
	if rec.RegisteredAt.IsZero() {
		rec.RegisteredAt = now.UTC()
	}
	if rec.Source != "" && !rec.Source.Valid() {
		return nil, fmt.Errorf("put tool version %q: unknown source %q", rec.Name, rec.Source)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("put tool version %q: encode: %w", rec.Name, err)
	}
	return v, nil
}

// PutToolVersion implements ToolStore. rec.ModuleSHA256 must be the
// SHA-256 of module; a zero RegisteredAt is set to now. module is not
// kept after PutToolVersion returns, and must not change while it runs.
func (db *DB) PutToolVersion(ctx context.Context, rec ToolRecord, module []byte) error {
	v, err := PrepareToolVersion(&rec, module, db.now())
	if err != nil {
		return err
	}
	// module is not copied: update returns only once the write is
	// committed (bbolt copies it into its pages), and the caller does not
	// change it meanwhile.
	err = db.update(ctx, func(tx *bolt.Tx) error {
		mods := tx.Bucket(bucketModules)
		if mods.Get([]byte(rec.ModuleSHA256)) == nil {
			if err := put(tx, bucketModules, []byte(rec.ModuleSHA256), module); err != nil {
				return err
			}
		}
		if err := put(tx, bucketToolVersions, toolVersionKey(rec.Name, rec.ModuleSHA256), v); err != nil {
			return err
		}
		return put(tx, bucketToolCurrent, []byte(rec.Name), []byte(rec.ModuleSHA256))
	})
	if err != nil {
		return fmt.Errorf("put tool version %q: %w", rec.Name, err)
	}
	return nil
}

func getToolVersion(tx *bolt.Tx, name, sha string) (ToolRecord, error) {
	var r ToolRecord
	v := tx.Bucket(bucketToolVersions).Get(toolVersionKey(name, sha))
	if v == nil {
		return r, ErrNotFound
	}
	if err := decodeRecord(v, &r); err != nil {
		return r, err
	}
	r.Source = r.EffectiveSource()
	return r, nil
}

// Tool implements ToolStore.
func (db *DB) Tool(ctx context.Context, name string) (ToolRecord, error) {
	var r ToolRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		sha := tx.Bucket(bucketToolCurrent).Get([]byte(name))
		if sha == nil {
			return ErrNotFound
		}
		var err error
		r, err = getToolVersion(tx, name, string(sha))
		return err
	})
	if err != nil {
		return ToolRecord{}, fmt.Errorf("tool %q: %w", name, err)
	}
	return r, nil
}

// ToolVersion implements ToolStore.
func (db *DB) ToolVersion(ctx context.Context, name, moduleSHA256 string) (ToolRecord, error) {
	var r ToolRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		r, err = getToolVersion(tx, name, moduleSHA256)
		return err
	})
	if err != nil {
		return ToolRecord{}, fmt.Errorf("tool %q version %s: %w", name, moduleSHA256, err)
	}
	return r, nil
}

// Module implements ToolStore.
func (db *DB) Module(ctx context.Context, moduleSHA256 string) ([]byte, error) {
	var out []byte
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketModules).Get([]byte(moduleSHA256))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", moduleSHA256, err)
	}
	return out, nil
}

// Tools implements ToolStore.
func (db *DB) Tools(ctx context.Context) ([]ToolRecord, error) {
	var out []ToolRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketToolCurrent).ForEach(func(name, sha []byte) error {
			r, err := getToolVersion(tx, string(name), string(sha))
			if err != nil {
				return fmt.Errorf("%w: current version of %q: %w", ErrCorrupt, name, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	// bbolt already iterates in key order; sort anyway so the contract
	// does not depend on it.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveTool implements ToolStore.
func (db *DB) RemoveTool(ctx context.Context, name string) error {
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketToolCurrent)
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		return del(tx, bucketToolCurrent, []byte(name))
	})
	if err != nil {
		return fmt.Errorf("remove tool %q: %w", name, err)
	}
	return nil
}

// UploadedBytes returns what uploads (SourceUpload) store: the size of
// every version record from an upload, removed names included, and of
// every distinct module such a version runs.
func (db *DB) UploadedBytes(ctx context.Context) (uint64, error) {
	var n uint64
	err := db.view(ctx, func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		mods := tx.Bucket(bucketModules)
		return tx.Bucket(bucketToolVersions).ForEach(func(k, v []byte) error {
			var r ToolRecord
			if err := decodeRecord(v, &r); err != nil {
				return err
			}
			if r.EffectiveSource() != SourceUpload {
				return nil
			}
			n += uint64(len(k) + len(v))
			if !seen[r.ModuleSHA256] {
				seen[r.ModuleSHA256] = true
				n += uint64(len(mods.Get([]byte(r.ModuleSHA256))))
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("uploaded bytes: %w", err)
	}
	return n, nil
}
