package store

import "github.com/nanovm/nano-vm-mcp/internal/toolrecord"

// ToolSource says who registered a tool version (toolrecord.Source: the
// sandbox and the store share it without importing each other).
type ToolSource = toolrecord.Source

// The sources of a tool version; see toolrecord.
const (
	SourceBundled  = toolrecord.SourceBundled
	SourceOperator = toolrecord.SourceOperator
	SourceUpload   = toolrecord.SourceUpload
)

// ToolRecord is one registered version of a tool (toolrecord.Record).
type ToolRecord = toolrecord.Record

// ToolProvenance is where a tool version's module came from and who
// signed it (toolrecord.Provenance).
type ToolProvenance = toolrecord.Provenance

// OriginOCI is a module pulled from an OCI registry (toolrecord.OriginOCI).
const OriginOCI = toolrecord.OriginOCI
