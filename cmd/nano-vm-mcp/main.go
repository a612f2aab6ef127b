package main

import (
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// defaultGOGC is the garbage collector's target when GOGC is not set: the
// heap may grow to five times what is live between collections instead of
// twice. The durable-step path allocates a few hundred short-lived objects
// per program over a small live heap, so at Go's default 100 collection
// took about a fifth of the CPU; see .rationale/runtime.md "Why does the
// binary set GOGC=400?". GOGC in the environment (Go's own variable)
// overrides it, GOGC=100 restoring Go's default.
const defaultGOGC = 400

// defaultMemLimit is the soft limit on the Go runtime's memory set with
// defaultGOGC when GOMEMLIMIT is not set: with a large live heap (a 20 MB
// module being registered holds several copies of it), GOGC=400 alone
// would let the heap grow to five times that before collecting; the limit
// makes the collector run earlier once the process nears it, so the
// trade of memory for CPU stays bounded. Guest memories and compiled code
// are mapped outside the Go heap and not counted.
const defaultMemLimit = 512 << 20

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
		if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
			debug.SetMemoryLimit(defaultMemLimit)
		}
	}
}

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
