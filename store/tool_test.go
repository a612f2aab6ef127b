package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

// Ensure a tool version keeps its source and grants, a record written
// before sources existed reads as the operator's, and an unknown source is
// refused.
func TestToolRecordSource(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tools.db")
	db := openAt(t, path, nil)
	mod := []byte("\x00asm\x01\x00\x00\x00")
	up := store.ToolRecord{Name: "up", ModuleSHA256: sha(mod), Source: store.SourceUpload, Grants: map[string]string{"nanovm:log": "upload-default"}}
	if err := db.PutToolVersion(ctx, up, mod); err != nil {
		t.Fatal(err)
	}
	if err := db.PutToolVersion(ctx, store.ToolRecord{Name: "bad", ModuleSHA256: sha(mod), Source: "client"}, mod); err == nil {
		t.Fatal("an unknown source was stored")
	}
	if err := db.PutToolVersion(ctx, store.ToolRecord{Name: "old", ModuleSHA256: sha(mod)}, mod); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Write "old" as a record from before sources: no source field at all.
	err := rawUpdate(path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("tool_versions")).Put(append([]byte("old\x00"), sha(mod)...),
			[]byte(`{"name":"old","module_sha256":"`+sha(mod)+`","manifest_sha256":"","manifest":null,"registered_at":"2026-01-01T00:00:00Z"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, nil)
	defer db.Close()
	got, err := db.Tool(ctx, "up")
	if err != nil || got.Source != store.SourceUpload || got.Grants["nanovm:log"] != "upload-default" {
		t.Fatalf("upload record: %+v %v", got, err)
	}
	old, err := db.ToolVersion(ctx, "old", sha(mod))
	if err != nil || old.Source != store.SourceOperator {
		t.Fatalf("record without a source: %+v %v", old, err)
	}
	list, err := db.Tools(ctx)
	if err != nil || len(list) != 2 || list[0].Source != store.SourceOperator || list[1].Source != store.SourceUpload {
		t.Fatalf("list: %+v %v", list, err)
	}
}
