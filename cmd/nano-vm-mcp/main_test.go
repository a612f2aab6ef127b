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
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
