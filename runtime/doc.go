// Package runtime is nano-vm-mcp's governed runtime (the gateway): it wires
// the kernel to the policy snapshot, the sandboxed tool executor, the store,
// idempotency, the vault and the audit chain, and serves them over MCP.
package runtime
