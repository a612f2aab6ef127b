// Package tools runs nano-vm-mcp's tools: WebAssembly modules executed under
// wazero with only the host functions their capabilities grant. It holds the
// tool manifest, the registry, and the sandbox host (compile, link, limits,
// import allowlists). The guest ABI is docs/tool-abi.md.
//
// A process makes one Host (the runtime and compilation cache) and one
// Registry over a Store; Registry.Resolve turns "name" or
// "name@sha256:<hex>" into a Tool, and Tool.Call runs it. The kernel adapter
// is the sub-package executor, the only part that imports kernel.
//
// # Invariants
//
//   - Before anything is compiled, Register reads the module structurally
//     (internal/wasmbin) against ModuleLimits and refuses what exceeds a
//     ceiling, naming it; a refused module is never compiled or kept.
//   - Gate A: Register refuses a module importing anything outside the
//     capabilities granted to it, or a host function with another
//     signature than the host's, or any table, memory or global, naming
//     each import.
//   - Every table's maximum is held to ModuleLimits.TableElements in the
//     bytes compiled, so table.grow past it returns -1; tables at their
//     maximum plus the declared memory must fit the memory ceiling.
//   - Gate B: an instance links only host modules built for its effective
//     capability set (an import resolver answers every module name), so an
//     ungranted import cannot resolve even if gate A were bypassed; the
//     nanovm functions also check the calling call's capabilities.
//   - Without wasi:clock / wasi:random a guest sees fixed clocks and a
//     fixed-seed random stream, so a fresh call repeats byte for byte.
//   - A trap, exit, timeout or breached limit is an error for that call
//     only; the instance is discarded and the host carries on.
//
// # Caveats
//
//   - stderr past its cap is truncated, not fatal; stdout past its cap and
//     memory past its ceiling kill the call.
//   - Closing the Host while calls run ends them with errors.
package tools
