package main

import (
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is main without the process, so tests can call it. With no command,
// or flags first, it serves (the command MCP clients start).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cio := &cliIO{stdin: stdin, stdout: stdout, stderr: stderr}
	switch {
	case len(args) > 0 && args[0] == "--version":
		args = []string{"version"}
	case len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelp(args[0])):
		args = append([]string{"serve"}, args...)
	}
	return exitCode(dispatch(root, args, cio), stderr)
}
