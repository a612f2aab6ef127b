package runtime

import (
	"encoding/json"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// TraceHeader is a trace's header as its readers show it: the fields of
// get_trace's answer and of the web viewer's run document other than the
// steps and the final output, which each reader shapes to its own budget.
// Free text (program id and name, error, suspended step) is as stored; a
// reader clips it to its own limits.
type TraceHeader struct {
	TraceID          string             `json:"trace_id"`
	ProgramID        string             `json:"program_id,omitempty"`
	ProgramName      string             `json:"program_name"`
	ProgramHash      string             `json:"program_hash"`
	PolicyHash       string             `json:"policy_hash"`
	Status           kernel.Status      `json:"status"`
	Error            string             `json:"error,omitempty"`
	SuspendedStepID  string             `json:"suspended_step_id,omitempty"`
	StepMetrics      kernel.StepMetrics `json:"step_metrics"`
	Usage            kernel.Usage       `json:"usage"`
	InitialStateHash string             `json:"initial_state_hash"`
	StateRoot        string             `json:"state_root,omitempty"`
	StartedAt        time.Time          `json:"started_at"`
	FinishedAt       *time.Time         `json:"finished_at,omitempty"`
	DurationMS       float64            `json:"duration_ms"`
	TotalSteps       int                `json:"total_steps"`
	Offset           int                `json:"offset"`
	NextOffset       *int               `json:"next_offset,omitempty"`
}

// Header is v's header.
func (v *TraceView) Header() TraceHeader {
	return TraceHeader{
		TraceID: v.TraceID, ProgramID: v.ProgramID, ProgramName: v.ProgramName, ProgramHash: v.ProgramHash,
		PolicyHash: v.PolicyHash, Status: v.Status, Error: v.Error, SuspendedStepID: v.SuspendedStepID,
		StepMetrics: v.StepMetrics, Usage: v.Usage, InitialStateHash: v.InitialStateHash, StateRoot: v.StateRoot,
		StartedAt: v.StartedAt, FinishedAt: v.FinishedAt, DurationMS: v.DurationMS,
		TotalSteps: v.TotalSteps, Offset: v.Offset, NextOffset: v.NextOffset,
	}
}

// ToolSummary is a registered tool version as its readers list it (the
// MCP tool records and the web viewer's tools page): the record's
// identity and powers and what its manifest says about itself. Version and
// Description come from the manifest as stored; a reader clips them.
type ToolSummary struct {
	Name           string   `json:"name"`
	Version        string   `json:"version,omitempty"`
	Description    string   `json:"description,omitempty"`
	Capabilities   []string `json:"capabilities"`
	ModuleSHA256   string   `json:"module_sha256"`
	ManifestSHA256 string   `json:"manifest_sha256"`
	// RegisteredAt is when the version was registered.
	RegisteredAt time.Time `json:"registered_at"`
	// Source and Grants say who registered the version and who granted
	// each capability it holds.
	Source string            `json:"source"`
	Grants map[string]string `json:"grants"`
	// Ref pins this exact version in a program's "tool" field.
	Ref string `json:"ref"`
}

// SummariseTool is r's summary. Capabilities and Grants are never nil
// (empty when the manifest asks for none or nothing was granted).
func SummariseTool(r store.ToolRecord) ToolSummary {
	var m struct {
		Version      string   `json:"version"`
		Description  string   `json:"description"`
		Capabilities []string `json:"capabilities"`
	}
	_ = json.Unmarshal(r.Manifest, &m) // a stored manifest was validated at registration
	if m.Capabilities == nil {
		m.Capabilities = []string{}
	}
	grants := r.Grants
	if grants == nil {
		grants = map[string]string{}
	}
	return ToolSummary{
		Name: r.Name, Version: m.Version, Description: m.Description, Capabilities: m.Capabilities,
		ModuleSHA256: r.ModuleSHA256, ManifestSHA256: r.ManifestSHA256, RegisteredAt: r.RegisteredAt,
		Source: string(r.EffectiveSource()), Grants: grants, Ref: r.Name + "@sha256:" + r.ModuleSHA256,
	}
}

// RunSummary is a run as its readers list it (list_traces and the web
// viewer's run list): its ids, status and times, no steps. The free text
// a client chose (program id and name, idempotency key) is passed through
// the reader's clip.
type RunSummary struct {
	TraceID        string        `json:"trace_id"`
	ProgramID      string        `json:"program_id,omitempty"`
	ProgramName    string        `json:"program_name"`
	Status         kernel.Status `json:"status"`
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// SummariseRun is e's summary, its client-chosen text clipped by clip.
func SummariseRun(e store.Run, clip func(string) string) RunSummary {
	return RunSummary{
		TraceID: e.ID, ProgramID: clip(e.ProgramID), ProgramName: clip(e.ProgramName), Status: e.Status,
		IdempotencyKey: clip(e.IdempotencyKey), CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
}
