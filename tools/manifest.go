package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Manifest describes one tool version. It is decoded strictly (unknown
// fields are errors) and validated once, at registration.
type Manifest struct {
	// Name is how programs call the tool: [a-z][a-z0-9_.-]{0,63}.
	Name string `json:"name"`
	// Version is a free-form label for people; the module hash is what
	// identifies the code.
	Version string `json:"version,omitempty"`
	// Description says what the tool does, for clients and models.
	Description string `json:"description,omitempty"`
	// InputSchema is a JSON Schema the call arguments must satisfy; nil
	// accepts any object.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// OutputSchema, when set, is checked against every non-PENDING result.
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	// Capabilities the tool asks for; wasi:stdio is implied.
	Capabilities []string `json:"capabilities,omitempty"`
	// AllowedHosts limits nanovm.http_request: "host", "host:port" or
	// "*.domain". Empty means no host.
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	// Mounts are host directories the guest sees (needs wasi:fs).
	Mounts []Mount `json:"mounts,omitempty"`
	// Env is the guest's whole environment; nothing else is passed.
	Env map[string]string `json:"env,omitempty"`
	// Limits caps the resources of one call; zero fields take defaults.
	Limits Limits `json:"limits,omitzero"`
	// Isolation is "fresh" (the default: a new instance per call) or
	// "pool" (warm instances, reused one call at a time).
	Isolation string `json:"isolation,omitempty"`
	// PoolSize bounds the warm instances of a pooled tool; default 4.
	PoolSize int `json:"pool_size,omitempty"`
	// Config is what an Extism plugin reads through config_get. It is
	// part of the manifest (hashed, stored, shown): never a secret.
	Config map[string]string `json:"config,omitempty"`
	// Command, when set, says how a WASI command program is called: its
	// argv, its stdin, how its stdout and exit codes are read (command.go).
	Command *Command `json:"command,omitempty"`
}

// Mount maps a host directory into the guest's filesystem.
type Mount struct {
	// HostPath is an absolute directory on the host.
	HostPath string `json:"host_path"`
	// GuestPath is where the guest sees it, an absolute path such as /data.
	GuestPath string `json:"guest_path"`
	// ReadOnly refuses every write through this mount.
	ReadOnly bool `json:"read_only"`
}

// Limits caps one call. Zero means the default.
type Limits struct {
	// MemoryMiB is the linear-memory ceiling; default 64.
	MemoryMiB int `json:"memory_mib,omitempty"`
	// TimeoutMS is the wall-clock limit of a call; default 10000. A step's
	// timeout_seconds, when set, takes precedence.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// StdoutBytes caps the result; default 1 MiB.
	StdoutBytes int `json:"stdout_bytes,omitempty"`
	// StderrBytes caps the log; default 64 KiB.
	StderrBytes int `json:"stderr_bytes,omitempty"`
}

// Isolation modes.
const (
	IsolationFresh = "fresh"
	IsolationPool  = "pool"
)

const (
	defaultMemoryMiB   = 64
	defaultTimeout     = 10 * time.Second
	defaultStdoutBytes = 1 << 20
	defaultStderrBytes = 64 << 10
	defaultPoolSize    = 4
	maxMemoryMiB       = 4096
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// ParseManifest decodes and validates a manifest, rejecting unknown fields.
// A manifest over jsonlimit.MaxManifestBytes or nested deeper than
// jsonlimit.MaxDepth (its schemas included) is refused.
func ParseManifest(data []byte) (Manifest, error) {
	if err := jsonlimit.CheckSize("manifest", len(data), jsonlimit.MaxManifestBytes); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest: %w: %w", ErrInvalidManifest, err)
	}
	if err := jsonlimit.Check(data); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest: %w: %w", ErrInvalidManifest, err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest: %w: %w", ErrInvalidManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, fmt.Errorf("parse manifest: %w: trailing data after the object", ErrInvalidManifest)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Validate checks every field, naming the first bad one.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("manifest %q: %w: %s", m.Name, ErrInvalidManifest, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(m.Name) {
		return bad("name must match %s", nameRE)
	}
	seen := map[string]bool{}
	for _, c := range m.Capabilities {
		if !Capability(c).Valid() {
			return bad("capabilities: unknown capability %q (known: %v)", c, Capabilities())
		}
		if seen[c] {
			return bad("capabilities: %q listed twice", c)
		}
		seen[c] = true
	}
	if len(m.AllowedHosts) > 0 && !seen[string(CapHTTP)] {
		return bad("allowed_hosts needs capability %s", CapHTTP)
	}
	for _, h := range m.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ @") || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			return bad("allowed_hosts: %q must be host, host:port or *.domain", h)
		}
	}
	if len(m.Mounts) > 0 && !seen[string(CapFS)] {
		return bad("mounts need capability %s", CapFS)
	}
	for i, mt := range m.Mounts {
		if !path.IsAbs(mt.GuestPath) || path.Clean(mt.GuestPath) != mt.GuestPath {
			return bad("mounts[%d].guest_path %q must be a clean absolute path", i, mt.GuestPath)
		}
		if !strings.HasPrefix(mt.HostPath, "/") {
			return bad("mounts[%d].host_path %q must be absolute", i, mt.HostPath)
		}
	}
	for k := range m.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("env: invalid variable name %q", k)
		}
	}
	for k := range m.Config {
		if k == "" {
			return bad("config: empty key")
		}
	}
	l := m.Limits
	switch {
	case l.MemoryMiB < 0 || l.MemoryMiB > maxMemoryMiB:
		return bad("limits.memory_mib must be 0..%d", maxMemoryMiB)
	case l.TimeoutMS < 0:
		return bad("limits.timeout_ms must not be negative")
	case l.StdoutBytes < 0:
		return bad("limits.stdout_bytes must not be negative")
	case l.StderrBytes < 0:
		return bad("limits.stderr_bytes must not be negative")
	}
	switch m.Isolation {
	case "", IsolationFresh, IsolationPool:
	default:
		return bad("isolation must be %q or %q, not %q", IsolationFresh, IsolationPool, m.Isolation)
	}
	if m.PoolSize < 0 || m.PoolSize > 256 || (m.PoolSize > 0 && m.Isolation != IsolationPool) {
		return bad("pool_size must be 0..256 and needs isolation %q", IsolationPool)
	}
	for _, s := range []struct {
		field string
		raw   json.RawMessage
	}{{"input_schema", m.InputSchema}, {"output_schema", m.OutputSchema}} {
		if len(s.raw) == 0 {
			continue
		}
		if _, err := compileSchema(s.raw); err != nil {
			return bad("%s: %v", s.field, err)
		}
	}
	return m.Command.validate(m, bad)
}

// memoryBytes, timeout, stdoutCap, stderrCap and poolSize apply defaults.
func (m *Manifest) memoryBytes() uint64 {
	if m.Limits.MemoryMiB == 0 {
		return defaultMemoryMiB << 20
	}
	return uint64(m.Limits.MemoryMiB) << 20
}

func (m *Manifest) timeout() time.Duration {
	if m.Limits.TimeoutMS == 0 {
		return defaultTimeout
	}
	return time.Duration(m.Limits.TimeoutMS) * time.Millisecond
}

func (m *Manifest) stdoutCap() int {
	if m.Limits.StdoutBytes == 0 {
		return defaultStdoutBytes
	}
	return m.Limits.StdoutBytes
}

func (m *Manifest) stderrCap() int {
	if m.Limits.StderrBytes == 0 {
		return defaultStderrBytes
	}
	return m.Limits.StderrBytes
}

func (m *Manifest) poolSize() int {
	if m.PoolSize == 0 {
		return defaultPoolSize
	}
	return m.PoolSize
}

// canonical returns the manifest's RFC 8785 JSON and its SHA-256 hex.
func (m *Manifest) canonical() ([]byte, string, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest %q: %w", m.Name, err)
	}
	c, err := canonical.Marshal(json.RawMessage(raw))
	if err != nil {
		return nil, "", fmt.Errorf("canonicalize manifest %q: %w", m.Name, err)
	}
	return c, sha256Hex(c), nil
}

// compileSchema compiles one JSON Schema document (draft 2020-12 unless it
// says otherwise), refusing remote references.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem:///schema.json", doc); err != nil {
		return nil, fmt.Errorf("add schema: %w", err)
	}
	s, err := c.Compile("mem:///schema.json")
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	return s, nil
}
