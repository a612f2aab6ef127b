package store

import (
	"encoding/json"
	"time"
)

// ToolRecord is one registered version of a tool: its manifest and the
// content address of its WebAssembly module. Module bytes are stored once per
// hash and never deleted while a version refers to them, so an old execution
// can always name the exact code it ran.
type ToolRecord struct {
	// Name is the tool's name as programs call it.
	Name string `json:"name"`
	// ModuleSHA256 is the lowercase hex SHA-256 of the module bytes.
	ModuleSHA256 string `json:"module_sha256"`
	// ManifestSHA256 is the lowercase hex SHA-256 of the manifest's
	// canonical JSON (RFC 8785).
	ManifestSHA256 string `json:"manifest_sha256"`
	// Manifest is the tool's manifest as JSON; package tools defines it.
	Manifest json.RawMessage `json:"manifest"`
	// RegisteredAt is when this version was registered.
	RegisteredAt time.Time `json:"registered_at"`
}
