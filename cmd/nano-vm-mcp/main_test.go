package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the nano-vm-mcp command built once for the end-to-end tests,
// without the race detector so that child processes start fast.
var binary string

// sharedCache is a compilation cache the tests' processes share.
var sharedCache string

// fakeHome is HOME for the tests and their children (see TestMain).
var fakeHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nanovm-cmd-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nano-vm-mcp")
	sharedCache = filepath.Join(dir, "wasm-cache")
	// NANO_VM_MCP_TEST_BINARY runs the end-to-end tests against another
	// build, e.g. an older release, to see which of them it fails.
	if b := os.Getenv("NANO_VM_MCP_TEST_BINARY"); b != "" {
		binary = b
	} else {
		build := exec.Command("go", "build", "-o", binary, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build nano-vm-mcp:", err)
			os.Exit(1)
		}
	}
	// No test may write into the real home: the default database and the
	// bench cache live under HOME and the XDG folders. Set after the build,
	// which needs the real Go caches.
	fakeHome = filepath.Join(dir, "home")
	for k, v := range map[string]string{"HOME": fakeHome, "XDG_DATA_HOME": filepath.Join(fakeHome, "xdg-data"), "XDG_CACHE_HOME": filepath.Join(fakeHome, "xdg-cache")} {
		os.Setenv(k, v)
	}
	// The binaries these tests start compile Go tools of several MiB
	// while the race-enabled suite loads every core: the default 60 s
	// compile timeout is a ceiling for a hostile module, not a test's
	// clock (the tests of the ceiling set their own).
	if os.Getenv("NANO_VM_MCP_COMPILE_TIMEOUT") == "" {
		os.Setenv("NANO_VM_MCP_COMPILE_TIMEOUT", "15m")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
