//go:build wasip1

package main

import "github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go/nanovm"

//go:wasmexport nanovm_call
func nanovmCall() int32 { return nanovm.Call(probe) }
