package runtime_test

import (
	"os"
	"testing"
)

// sharedCache is the package's compilation cache: compiling the bundled
// tools is the slowest part of opening a runtime (seconds under -race), so
// the tests share one.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nanovm-wasm-cache")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
