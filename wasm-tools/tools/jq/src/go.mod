// The bundled jq tool's own module, so that gojq is a dependency of the
// tool and never of the server (see .rationale/sandbox.md). build.sh builds
// it from this folder for wasip1 (wasm-tools/tools/jq/jq.wasm).
module github.com/nanovm/nano-vm-mcp/wasm-tools/tools/jq/src

go 1.24.0

require github.com/itchyny/gojq v0.12.20

require github.com/itchyny/timefmt-go v0.1.9 // indirect
