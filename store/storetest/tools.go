package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/nanovm/nano-vm-mcp/store"
)

func toolRec(name string, module []byte) store.ToolRecord {
	sum := sha256.Sum256(module)
	return store.ToolRecord{Name: name, ModuleSHA256: hex.EncodeToString(sum[:]), ManifestSHA256: "man-" + name, Manifest: []byte(`{"name":"` + name + `"}`)}
}

// testTools ensures tool versions are recorded, the latest is current,
// old versions and modules survive removal, and modules are stored by hash.
func testTools(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	v1, v2 := []byte("\x00asm v1"), []byte("\x00asm v2")
	for _, r := range []struct {
		rec store.ToolRecord
		mod []byte
	}{{toolRec("echo", v1), v1}, {toolRec("echo", v2), v2}, {toolRec("add", v1), v1}} {
		if err := st.PutToolVersion(ctx, r.rec, r.mod); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := st.Tool(ctx, "echo")
	if err != nil || cur.ModuleSHA256 != toolRec("", v2).ModuleSHA256 || !cur.RegisteredAt.Equal(e.clock.Now()) || string(cur.Manifest) != `{"name":"echo"}` {
		t.Fatalf("Tool(echo) = %+v, %v", cur, err)
	}
	list, err := st.Tools(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "add" || list[1].Name != "echo" {
		t.Fatalf("Tools = %+v, %v", list, err)
	}
	if err := st.RemoveTool(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{name: "removed tool", err: func() error { _, err := st.Tool(ctx, "echo"); return err }(), wantErr: store.ErrNotFound},
		{name: "old version stays", err: func() error { _, err := st.ToolVersion(ctx, "echo", toolRec("", v1).ModuleSHA256); return err }(), wantErr: nil},
		{name: "unknown version", err: func() error { _, err := st.ToolVersion(ctx, "add", toolRec("", v2).ModuleSHA256); return err }(), wantErr: store.ErrNotFound},
		{name: "remove twice", err: st.RemoveTool(ctx, "echo"), wantErr: store.ErrNotFound},
		{name: "unknown module", err: func() error { _, err := st.Module(ctx, "00"); return err }(), wantErr: store.ErrNotFound},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.wantErr)
		}
	}
	for _, m := range [][]byte{v1, v2} {
		got, err := st.Module(ctx, toolRec("", m).ModuleSHA256)
		if err != nil || !bytes.Equal(got, m) {
			t.Errorf("Module = %q, %v; want %q", got, err, m)
		}
	}
	if list, _ := st.Tools(ctx); len(list) != 1 {
		t.Errorf("after remove, Tools = %+v", list)
	}
	bad := toolRec("bad", v1)
	if err := st.PutToolVersion(ctx, bad, v2); err == nil {
		t.Error("PutToolVersion accepted a module that does not match its hash")
	}
}
