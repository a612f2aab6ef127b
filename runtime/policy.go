package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/canonical"
)

// Policy is the operator's PolicySnapshot: which tools may run, with which
// capabilities, and which state keys each tool may see. It is loaded once
// at start-up and frozen: a client cannot change it, and every envelope
// records its hash.
type Policy struct {
	// PolicyID names the policy.
	PolicyID string `json:"policy_id"`
	// Version is the operator's version of the policy.
	Version string `json:"version"`
	// ToolCapabilities maps each allowed tool to the capabilities it may
	// hold. A tool not listed may not run. A tool's effective capabilities
	// are the intersection of this list and its manifest's.
	ToolCapabilities map[string][]string `json:"tool_capabilities"`
	// ToolStateKeys maps a tool to the top-level state keys its TOOL
	// projection may see beyond its args; absent means none.
	ToolStateKeys map[string][]string `json:"tool_state_keys,omitempty"`

	// permissive is set for the default policy used when the operator
	// gave none: every registered tool with its manifest's capabilities.
	permissive bool
	hash       string
}

// DefaultPolicy is the policy used when no policy file is configured: every
// registered tool may run with the capabilities its manifest asks for, and
// no tool sees state beyond its args. The server logs a warning when it
// runs under it.
func DefaultPolicy() *Policy {
	p := &Policy{PolicyID: "default-allow-registered", Version: "1", ToolCapabilities: map[string][]string{}, permissive: true}
	p.seal()
	return p
}

// LoadPolicy reads a policy file, JSON or YAML (by extension: .yaml and
// .yml are YAML, anything else JSON). Unknown fields are errors.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".yaml" || ext == ".yml" {
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", path, err)
		}
		if data, err = json.Marshal(doc); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", path, err)
		}
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes and validates a JSON policy.
func ParsePolicy(data []byte) (*Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	if p.PolicyID == "" {
		return nil, errors.New("parse policy: policy_id is required")
	}
	if p.ToolCapabilities == nil {
		return nil, errors.New("parse policy: tool_capabilities is required (use {} to allow no tool)")
	}
	for tool := range p.ToolStateKeys {
		if _, ok := p.ToolCapabilities[tool]; !ok {
			return nil, fmt.Errorf("parse policy: tool_state_keys names %q, which tool_capabilities does not allow", tool)
		}
	}
	p.seal()
	return &p, nil
}

// seal normalises the lists and computes the hash.
func (p *Policy) seal() {
	for k, caps := range p.ToolCapabilities {
		caps = slices.Clone(caps)
		sort.Strings(caps)
		p.ToolCapabilities[k] = slices.Compact(caps)
	}
	h, err := canonical.Hash(map[string]any{
		"policy_id":         p.PolicyID,
		"version":           p.Version,
		"tool_capabilities": p.ToolCapabilities,
		"tool_state_keys":   p.ToolStateKeys,
		"default":           p.permissive,
	})
	if err != nil {
		panic("policy: canonical hash: " + err.Error()) // maps of strings always encode
	}
	p.hash = h
}

// Hash is the SHA-256 of the policy's canonical JSON (RFC 8785).
func (p *Policy) Hash() string { return p.hash }

// Permissive reports whether this is the default allow-registered policy.
func (p *Policy) Permissive() bool { return p.permissive }

// Allowed reports whether the policy lets tool run.
func (p *Policy) Allowed(tool string) bool {
	if p.permissive {
		return true
	}
	_, ok := p.ToolCapabilities[tool]
	return ok
}

// Grant returns the capabilities tool may hold out of those its manifest
// requests: the intersection with the policy's list, or everything
// requested under the default policy. A tool the policy does not allow
// gets an error naming it.
func (p *Policy) Grant(tool string, requested []string) ([]string, error) {
	if p.permissive {
		return slices.Clone(requested), nil
	}
	allowed, ok := p.ToolCapabilities[tool]
	if !ok {
		return nil, &DeniedError{Tools: []string{tool}}
	}
	var out []string
	for _, c := range requested {
		if slices.Contains(allowed, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// StateKeys returns the state keys tool may see.
func (p *Policy) StateKeys(tool string) []string { return p.ToolStateKeys[tool] }

// Check returns a *DeniedError naming every tool in prog (parallel
// sub-steps included) that the policy does not allow, or nil.
func (p *Policy) Check(prog *kernel.Program) error {
	if p.permissive {
		return nil
	}
	var denied []string
	var visit func(steps []kernel.Step)
	visit = func(steps []kernel.Step) {
		for i := range steps {
			s := &steps[i]
			if s.Type == kernel.StepTool {
				name, _, _ := strings.Cut(s.Tool, "@")
				if !p.Allowed(name) && !slices.Contains(denied, name) {
					denied = append(denied, name)
				}
			}
			visit(s.ParallelSteps)
		}
	}
	visit(prog.Steps)
	if len(denied) == 0 {
		return nil
	}
	sort.Strings(denied)
	return &DeniedError{Tools: denied}
}

// DeniedError is returned when a program or a call uses tools the policy
// does not allow. Its code is "capability_denied", as in the original.
type DeniedError struct {
	Tools []string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("capability_denied: the policy does not allow tool(s) %s", strings.Join(quoteAll(e.Tools), ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
