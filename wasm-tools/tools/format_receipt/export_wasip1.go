//go:build wasip1

package main

import "github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go/nanovm"

// nanovmCall is the ABI's reactor entry point; the host calls it once per
// call on a warm instance.
//
//go:wasmexport nanovm_call
func nanovmCall() int32 { return nanovm.Call(formatReceipt) }
