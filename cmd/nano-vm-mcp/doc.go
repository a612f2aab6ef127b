// Command nano-vm-mcp is the nano-vm-mcp server and its command-line
// interface.
package main
