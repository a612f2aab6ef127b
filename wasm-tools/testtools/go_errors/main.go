// go_errors is the test guest of the Go SDK's named errors: it resolves
// the "ref" it is given with nanovm.Secret and reports the error's text
// and which of the SDK's errors it matches with errors.Is, so a test can
// see what a Go tool's author sees when the host refuses. Built as a
// reactor (export_wasip1.go); natively main serves one call.
package main

import (
	"errors"

	"github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go/nanovm"
)

func main() { nanovm.Run(probe) }

var named = []struct {
	name string
	err  error
}{
	{"ErrDenied", nanovm.ErrDenied}, {"ErrTooSmall", nanovm.ErrTooSmall}, {"ErrNotFound", nanovm.ErrNotFound},
	{"ErrInvalid", nanovm.ErrInvalid}, {"ErrLimit", nanovm.ErrLimit}, {"ErrIO", nanovm.ErrIO}, {"ErrNoHost", nanovm.ErrNoHost},
}

func probe(args map[string]any) (any, error) {
	ref, _ := args["ref"].(string)
	_, err := nanovm.Secret(ref)
	if err == nil {
		return map[string]any{"resolved": true}, nil
	}
	out := map[string]any{"error_text": err.Error(), "is": ""}
	for _, n := range named {
		if errors.Is(err, n.err) {
			out["is"] = n.name
		}
	}
	return out, nil
}
