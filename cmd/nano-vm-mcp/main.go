package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

const usage = `nano-vm-mcp — a WebAssembly-sandboxed, audited program runtime for MCP clients.

Usage:
  nano-vm-mcp [serve] [--transport stdio|http|sse] [--host H] [--port P] [--db FILE]
  nano-vm-mcp run PROGRAM.json [--input FILE|JSON] [--idempotency-key K] [--json]
  nano-vm-mcp resume TRACE_ID [--payload FILE|JSON] [--source WEBHOOK|OPERATOR|TIMER]
  nano-vm-mcp tool add DIR | tool add MANIFEST.json MODULE.wasm | tool ls | tool show NAME | tool rm NAME
  nano-vm-mcp trace ls [--status S] [--limit N] | trace show TRACE_ID [--json]
  nano-vm-mcp audit verify [--execution TRACE_ID | --checkpoint FILE [--checkpoint-key VERIFIER_KEYS]]
  nano-vm-mcp audit checkpoint [--out FILE] [--checkpoint-signer KEY_FILE] | audit keygen NAME [--dir DIR]
  nano-vm-mcp secret put ID   (value read from stdin) | secret erase ID | secret ls
  nano-vm-mcp idempotency ls | idempotency rm KEY
  nano-vm-mcp bench [--scenario S,…] [--items N] [--concurrency C] [--json] [--no-sync]
  nano-vm-mcp version

Every command takes --db, --policy, --tools-dir and --env-file; every flag has
an environment variable (NANO_VM_MCP_DB, NANO_VM_MCP_POLICY, …): see README.
Run "nano-vm-mcp COMMAND --help" for a command's flags.
`

// run is main without the process, so tests can call it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	io := &cliIO{stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(args, io)
	case "run":
		err = cmdRun(args, io)
	case "resume":
		err = cmdResume(args, io)
	case "tool", "tools":
		err = cmdTool(args, io)
	case "trace", "traces":
		err = cmdTrace(args, io)
	case "audit":
		err = cmdAudit(args, io)
	case "secret", "secrets":
		err = cmdSecret(args, io)
	case "idempotency":
		err = cmdIdempotency(args, io)
	case "bench":
		err = cmdBench(args, io)
	case "version", "--version":
		fmt.Fprintf(stdout, "nano-vm-mcp %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "nano-vm-mcp: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return exitCode(err, stderr)
}
