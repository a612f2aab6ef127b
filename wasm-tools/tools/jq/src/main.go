// Command jq is the bundled jq tool: gojq's library behind a small command
// line, built for wasip1 as a plain WASI command (it has a _start and exits
// with a code). The server calls it as its manifest's "command" section
// says: the filter is argv[1], the input JSON is stdin, and every result is
// written to stdout as compact JSON, one per line.
//
// Usage: jq [-n] [-r] [-c] [--arg NAME VALUE]... FILTER
//
//	-n              run FILTER once, on null, without reading stdin
//	-r              write string results raw, not as JSON strings
//	-c              accepted for jq's sake: output is always compact
//	--arg NAME V    bind $NAME to the string V
//
// Exit codes follow jq's: 0 success, 2 a usage error, 3 a filter that does
// not compile, 5 bad input or an error while running the filter (halt_error
// exits with its own code).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/itchyny/gojq"
)

const (
	exitUsage   = 2
	exitCompile = 3
	exitRuntime = 5
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		nullInput, raw bool
		names          []string
		values         []any
	)
	for len(args) > 1 {
		switch args[0] {
		case "-n":
			nullInput, args = true, args[1:]
			continue
		case "-r":
			raw, args = true, args[1:]
			continue
		case "-c":
			args = args[1:] // output is always compact
			continue
		case "--arg":
			if len(args) < 4 {
				fmt.Fprintln(stderr, "jq: --arg takes a name and a value")
				return exitUsage
			}
			names, values, args = append(names, "$"+args[1]), append(values, args[2]), args[3:]
			continue
		}
		break
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: jq [-n] [-r] [-c] [--arg NAME VALUE]... FILTER")
		return exitUsage
	}
	q, err := gojq.Parse(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "jq: error: the filter does not parse: %s\n", err)
		return exitCompile
	}
	in := &inputs{dec: json.NewDecoder(bufio.NewReader(stdin))}
	in.dec.UseNumber()
	code, err := gojq.Compile(q, gojq.WithVariables(names), gojq.WithInputIter(in),
		gojq.WithEnvironLoader(os.Environ))
	if err != nil {
		fmt.Fprintf(stderr, "jq: error: the filter does not compile: %s\n", err)
		return exitCompile
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	if nullInput {
		return emit(code.Run(nil, values...), out, stderr, raw)
	}
	for {
		v, ok := in.Next()
		if !ok {
			return 0
		}
		if err, ok := v.(error); ok {
			out.Flush()
			fmt.Fprintf(stderr, "jq: error: bad input: %s\n", err)
			return exitRuntime
		}
		if rc := emit(code.Run(v, values...), out, stderr, raw); rc != 0 {
			return rc
		}
	}
}

// emit writes every result of it, one per line; on an error it flushes
// what came before, reports the error and returns the exit code.
func emit(it gojq.Iter, out *bufio.Writer, stderr io.Writer, raw bool) int {
	for {
		v, ok := it.Next()
		if !ok {
			return 0
		}
		if err, ok := v.(error); ok {
			out.Flush()
			var halt *gojq.HaltError
			if errors.As(err, &halt) {
				if hv := halt.Value(); hv != nil {
					if s, ok := hv.(string); ok {
						fmt.Fprint(stderr, s)
					} else if b, err := gojq.Marshal(hv); err == nil {
						fmt.Fprintf(stderr, "%s\n", b)
					}
				}
				return halt.ExitCode()
			}
			fmt.Fprintf(stderr, "jq: error: %s\n", err)
			return exitRuntime
		}
		if s, ok := v.(string); ok && raw {
			out.WriteString(s)
		} else {
			b, err := gojq.Marshal(v)
			if err != nil {
				out.Flush()
				fmt.Fprintf(stderr, "jq: error: %s\n", err)
				return exitRuntime
			}
			out.Write(b)
		}
		out.WriteByte('\n')
	}
}

// inputs reads a stream of JSON values from stdin, for the main loop and
// for the filter's own input and inputs builtins. A decoding error is
// yielded once, as a value, and ends the stream.
type inputs struct {
	dec  *json.Decoder
	done bool
}

func (in *inputs) Next() (any, bool) {
	if in.done {
		return nil, false
	}
	var v any
	if err := in.dec.Decode(&v); err != nil {
		in.done = true
		if err == io.EOF {
			return nil, false
		}
		return err, true
	}
	return v, true
}
