// Package nanovm is the Go guest SDK for nano-vm-mcp tools (ABI v1, see
// docs/tool-abi.md). Build a tool with GOOS=wasip1 GOARCH=wasm; off wasip1
// the host functions return ErrNoHost, so a tool's logic still unit-tests
// natively.
package nanovm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNoHost is returned by host functions when not running under nanovm.
var ErrNoHost = errors.New("nanovm host functions unavailable")

// Status codes of the host functions.
const (
	StatusOK       = 0
	StatusDenied   = 1
	StatusTooSmall = 2
	StatusNotFound = 3
	StatusInvalid  = 4
	StatusLimit    = 5
	StatusIO       = 6
)

// The errors a host function's status means. A failed call returns a
// *StatusError, which matches one of these with errors.Is:
//
//	if errors.Is(err, nanovm.ErrDenied) { … }
var (
	// ErrDenied: the tool lacks the capability (in its manifest and its
	// grant), or the host, secret or mount it asked for is not granted
	// to it (status 1).
	ErrDenied = errors.New("denied: this tool was not granted the capability, host or secret it asked for")
	// ErrTooSmall: the buffer is too small for the answer (status 2).
	// Secret and StateJSON grow their buffer and retry themselves.
	ErrTooSmall = errors.New("buffer too small for the host's answer")
	// ErrNotFound: no such secret (status 3).
	ErrNotFound = errors.New("not found: no such secret")
	// ErrInvalid: the request was malformed (a bad URL or method, a
	// reference that is not vault://secret/<id>) or a pointer was out of
	// bounds (status 4).
	ErrInvalid = errors.New("invalid request")
	// ErrLimit: a size or time cap was hit, such as the response size or
	// the call's deadline (status 5).
	ErrLimit = errors.New("limit reached: a size or time cap of this call")
	// ErrIO: the request itself failed, such as a network error (status 6).
	ErrIO = errors.New("request failed")
)

// statusErrors maps a status to its error.
var statusErrors = map[uint32]error{
	StatusDenied: ErrDenied, StatusTooSmall: ErrTooSmall, StatusNotFound: ErrNotFound,
	StatusInvalid: ErrInvalid, StatusLimit: ErrLimit, StatusIO: ErrIO,
}

// StatusError is a non-zero status from a host function: Op names the
// function, and errors.Is matches the status's error (ErrDenied, …).
type StatusError struct {
	Op     string
	Status uint32
}

// Error implements error: "nanovm secret_get: not found: no such secret".
func (e *StatusError) Error() string {
	if err, ok := statusErrors[e.Status]; ok {
		return fmt.Sprintf("nanovm %s: %v", e.Op, err)
	}
	return fmt.Sprintf("nanovm %s: unknown status %d", e.Op, e.Status)
}

// Unwrap returns the status's error (ErrDenied, …), or nil for a status
// this SDK does not know.
func (e *StatusError) Unwrap() error { return statusErrors[e.Status] }

// Run reads the JSON arguments from stdin, calls fn and writes its result
// to stdout. An error becomes the result {"error": "<message>"}; use it as
// the body of main in a command (a tool built without -buildmode).
func Run(fn func(args map[string]any) (any, error)) {
	os.Exit(run(os.Stdin, os.Stdout, fn))
}

// Call is Run for a reactor: it serves one call and returns the exit code
// instead of exiting, so the instance stays usable for the next call (pool
// isolation). Build with -buildmode=c-shared and export it as the ABI's
// entry point from package main:
//
//	//go:wasmexport nanovm_call
//	func nanovmCall() int32 { return nanovm.Call(handle) }
//
// main is then never run; package initialisers run once per instance.
func Call(fn func(args map[string]any) (any, error)) int32 {
	return int32(run(os.Stdin, os.Stdout, fn))
}

func run(in io.Reader, out io.Writer, fn func(map[string]any) (any, error)) int {
	args := map[string]any{}
	if err := json.NewDecoder(in).Decode(&args); err != nil && err != io.EOF {
		_ = json.NewEncoder(out).Encode(map[string]string{"error": "decode arguments: " + err.Error()})
		return 0
	}
	res, err := fn(args)
	if err != nil {
		res = map[string]string{"error": err.Error()}
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "encode result:", err)
		return 1
	}
	return 0
}

// HTTPRequest is what HTTP sends.
type HTTPRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// HTTPResponse is what HTTP returns.
type HTTPResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Secret resolves a vault://secret/<id> ref (needs nanovm:secrets).
func Secret(ref string) (string, error) {
	buf := make([]byte, 4096)
	for {
		n, st := secretGet(ref, buf)
		switch {
		case st == StatusOK:
			return string(buf[:n]), nil
		case st == StatusTooSmall && int(n) > len(buf):
			buf = make([]byte, n)
		case st == noHost:
			return "", ErrNoHost
		default:
			return "", &StatusError{Op: "secret_get", Status: st}
		}
	}
}

// HTTP performs a request to an allowed host (needs nanovm:http). The
// response may be up to 1 MiB.
func HTTP(req HTTPRequest) (HTTPResponse, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return HTTPResponse{}, err
	}
	buf := make([]byte, 1<<20+64<<10)
	n, st := httpRequest(raw, buf)
	if st == noHost {
		return HTTPResponse{}, ErrNoHost
	}
	if st != StatusOK {
		return HTTPResponse{}, &StatusError{Op: "http_request", Status: st}
	}
	var resp HTTPResponse
	err = json.Unmarshal(buf[:n], &resp)
	return resp, err
}

// StateJSON returns the JSON object of the state projection the caller
// let this tool see (needs nanovm:state). It is {} when the caller passed
// none.
func StateJSON() ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		n, st := stateGet(buf)
		switch {
		case st == StatusOK:
			return buf[:n], nil
		case st == StatusTooSmall && int(n) > len(buf):
			buf = make([]byte, n)
		case st == noHost:
			return nil, ErrNoHost
		default:
			return nil, &StatusError{Op: "state_get", Status: st}
		}
	}
}

// State decodes StateJSON.
func State() (map[string]any, error) {
	raw, err := StateJSON()
	if err != nil {
		return nil, err
	}
	state := map[string]any{}
	if err := json.Unmarshal(raw, &state); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return state, nil
}

// Log writes one line to the tool's log at level 0..3 (needs nanovm:log).
func Log(level int, msg string) { hostLog(uint32(level), msg) }

const noHost = ^uint32(0)
