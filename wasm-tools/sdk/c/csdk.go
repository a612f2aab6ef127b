// Package csdk holds the C guest SDK's files for programs that hand them
// out: `nano-vm-mcp tool new --lang c` copies them into a new tool's
// folder. The files themselves are the SDK; this package only embeds them.
package csdk

import (
	_ "embed"
	"os"
	"os/exec"
	"strings"
)

// Header is nanovm.h, the freestanding single-header SDK.
//
//go:embed nanovm.h
var Header []byte

// Compiler is nanovm-cc, the bash script that builds a tool with clang
// and wasi-libc using the SDK's flags.
//
//go:embed nanovm-cc
var Compiler []byte

// MissingToolchain says what nanovm-cc needs that this machine lacks —
// clang with the wasm32 target, wasi-libc, wasm-ld — and the apt-get line
// that installs it; "" when nothing is missing.
func MissingToolchain() string {
	out, err := exec.Command("clang", "--print-targets").Output()
	if err != nil || !strings.Contains(string(out), "wasm32") {
		return "clang with the wasm32 target not installed (apt-get install clang lld wasi-libc)"
	}
	if _, err := os.Stat("/usr/lib/wasm32-wasi/libc.a"); err != nil {
		return "wasi-libc not installed (apt-get install wasi-libc)"
	}
	if _, err := exec.LookPath("wasm-ld"); err != nil {
		return "wasm-ld not installed (apt-get install lld)"
	}
	return ""
}
