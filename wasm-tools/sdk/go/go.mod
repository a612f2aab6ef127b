module github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go

// go 1.24 is the first release with //go:wasmexport and -buildmode=c-shared
// for wasip1. The SDK has no dependencies.
go 1.24
