// Package csdk holds the C guest SDK's files for programs that hand them
// out: `nano-vm-mcp tool new --lang c` copies them into a new tool's
// folder. The files themselves are the SDK; this package only embeds them.
package csdk

import _ "embed"

// Header is nanovm.h, the freestanding single-header SDK.
//
//go:embed nanovm.h
var Header []byte

// Compiler is nanovm-cc, the bash script that builds a tool with clang
// and wasi-libc using the SDK's flags.
//
//go:embed nanovm-cc
var Compiler []byte
