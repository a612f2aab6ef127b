package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure a tool folder's module is its one .wasm file whatever its name,
// among several the one named after the tool or the folder, and that
// anything else is ErrNoModule naming what was found.
func TestFindToolModule(t *testing.T) {
	tests := []struct {
		name    string
		folder  string
		files   []string
		tool    string
		want    string
		wantErr string
	}{
		{name: "one, any name", folder: "t", files: []string{"manifest.json", "build-output.wasm"}, tool: "x", want: "build-output.wasm"},
		{name: "several, one is the tool's", folder: "t", files: []string{"a.wasm", "x.wasm"}, tool: "x", want: "x.wasm"},
		{name: "several, one is the folder's", folder: "word_count", files: []string{"a.wasm", "word_count.wasm"}, tool: "wc", want: "word_count.wasm"},
		{name: "several, none named", folder: "t", files: []string{"a.wasm", "b.wasm"}, tool: "x", wantErr: "2 .wasm files (a.wasm, b.wasm) and none is named after the tool (x.wasm)"},
		{name: "none", folder: "t", files: []string{"manifest.json", "main.c"}, tool: "x", wantErr: "no .wasm file in it"},
		{name: "a folder named .wasm is no module", folder: "t", files: []string{"dir.wasm/"}, tool: "x", wantErr: "no .wasm file in it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.folder)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				var err error
				if strings.HasSuffix(f, "/") {
					err = os.Mkdir(filepath.Join(dir, f), 0o755)
				} else {
					err = os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := FindToolModule(dir, tt.tool)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoModule) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrNoModule and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tt.want) {
				t.Fatalf("got %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}
