package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// Ensure every durable step's progress notification reaches a stdio
// client before the run's answer, in order, through the real binary: the
// first process on a database serves its client as the primary, the
// second forwards over the primary's socket. Each runs 200 programs and
// counts the notifications when each answer arrives.
func TestProgressOverStdioProcesses(t *testing.T) {
	db := filepath.Join(t.TempDir(), "nano.db")
	const program = `{"name":"progress","steps":[
		{"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}},
		{"id":"check","type":"condition","condition":"$amount > 1","then":"done","otherwise":"done"},
		{"id":"done","type":"tool","tool":"validate_amount","args":{"amount":"$amount"},"is_terminal":true}]}`
	type proc struct {
		role   string
		c      *client.Client
		stderr *syncBuffer
		mu     sync.Mutex
		got    map[string][]float64
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	open := func(role string) *proc {
		p := &proc{role: role, got: map[string][]float64{}}
		child := launchStdio(t, stdioLaunch{
			name: "progress-" + role,
			env:  append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey)),
			args: []string{"--transport", "stdio", "--db", db, "--cache-dir", sharedCache},
			onNotification: func(n mcp.JSONRPCNotification) {
				if n.Method != string(mcp.MethodNotificationProgress) {
					return
				}
				token := fmt.Sprint(n.Params.AdditionalFields["progressToken"])
				progress, _ := n.Params.AdditionalFields["progress"].(float64)
				p.mu.Lock()
				p.got[token] = append(p.got[token], progress)
				p.mu.Unlock()
			},
		})
		p.c, p.stderr = child.c, child.stderr
		if want := "role=" + role; !p.stderr.waitFor(want) {
			t.Fatalf("%s: stderr lacks %q:\n%s", role, want, p.stderr)
		}
		return p
	}
	// Both stay up: the second finds the first serving the database.
	procs := []*proc{open("primary"), open("forwarder")}
	for _, p := range procs {
		t.Run(p.role, func(t *testing.T) {
			lost := 0
			for i := range 200 {
				token := fmt.Sprintf("%s-%d", p.role, i)
				var req mcp.CallToolRequest
				req.Params.Name = "run_program"
				req.Params.Arguments = map[string]any{"program": program, "input": map[string]any{"amount": 5}}
				req.Params.Meta = &mcp.Meta{ProgressToken: token}
				res, err := p.c.CallTool(ctx, req)
				if err != nil || res.IsError {
					t.Fatalf("run %d: %v %v\n%s", i, err, res, p.stderr)
				}
				p.mu.Lock()
				seen := fmt.Sprint(p.got[token])
				p.mu.Unlock()
				if seen != "[1 2 3]" {
					lost++
					t.Errorf("run %d: progress %s when the answer arrived, want [1 2 3]", i, seen)
				}
			}
			if lost > 0 {
				t.Fatalf("%d of 200 runs lost or reordered progress notifications", lost)
			}
		})
	}
}
