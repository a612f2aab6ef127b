package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// Ensure parse answers from the program parsed last exactly as from the
// hash-keyed cache and from a fresh parse: random programs (some of the
// same length, differing in one byte) in random order, each answer
// checked against a runtime that never saw the program before.
func TestParseLastMatchesCache(t *testing.T) {
	ctx := context.Background()
	open := func() *Runtime {
		rt, err := Open(ctx, Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), VaultKey: []byte("0123456789abcdef0123456789abcdef"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheDir: t.TempDir(), NoBundledTools: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		return rt
	}
	rt := open()
	rng := rand.New(rand.NewPCG(1, 2))
	var progs [][]byte
	for i := range 12 {
		// Same length, one byte apart: "a0".."a9", then longer ones.
		progs = append(progs, fmt.Appendf(nil, `{"name":"p%d","steps":[{"id":"s","type":"condition","condition":"$x == %d","then":"s2"},{"id":"s2","type":"tool","tool":"echo","args":{"a":"$x"}}]}`, i%10, i))
	}
	progs = append(progs, []byte(`{"name":"bad","steps":[]}`), []byte(`{`))
	failed := 0
	for range 400 {
		raw := progs[rng.IntN(len(progs))]
		got, gotErr := rt.parse(raw)
		want, wantErr := open0(t, rt, raw)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("parse(%s): error %v, fresh parse %v", raw, gotErr, wantErr)
		}
		if gotErr != nil {
			failed++
			continue
		}
		if got.hash != want.hash || string(got.canon) != string(want.canon) || got.prog.Name != want.prog.Name {
			t.Fatalf("parse(%s) = %s (%s), fresh parse %s (%s)", raw, got.canon, got.hash, want.canon, want.hash)
		}
	}
	if failed == 0 || failed > 100 {
		t.Fatalf("%d of 400 parses failed: the programs do not test both outcomes", failed)
	}
}

// open0 parses raw on a runtime of its own configuration with nothing
// cached.
func open0(_ *testing.T, rt *Runtime, raw []byte) (*parsedProgram, error) {
	fresh := &Runtime{cfg: rt.cfg}
	return fresh.parse(raw)
}
