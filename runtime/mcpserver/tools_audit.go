package mcpserver

// The management tools verify_audit: the audit chain.

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

type verifyArgs struct {
	// TraceID is the run to verify; empty verifies the whole chain.
	TraceID string `json:"trace_id"`
	// ExecutionID is TraceID under its earlier name. Deprecated: accepted
	// for one release; traceID resolves the two.
	ExecutionID string `json:"execution_id"`
	// Checkpoint is a signed checkpoint note (audit checkpoint's output).
	Checkpoint string `json:"checkpoint"`
}

// traceID is the run the arguments name, under trace_id or the deprecated
// execution_id; both given and different is refused.
func (a verifyArgs) traceID() (string, error) {
	return aliasArg("trace_id", a.TraceID, "execution_id", a.ExecutionID)
}

type verifyOut struct {
	store.VerifyReport
	// Scope says what was checked: "chain", "trace <id>" or "chain and
	// checkpoint".
	Scope string `json:"scope"`
	// Checkpoint is what a checkpoint check found; OK above is then false
	// unless both the chain and the checkpoint hold.
	Checkpoint *runtime.CheckpointCheck `json:"checkpoint,omitempty"`
	// Tools, for one run, says which code ran each tool step, from its
	// verified envelopes (tools_oci.go).
	Tools []stepTool `json:"tools,omitempty"`
}

func verifyAuditDef() toolDef {
	return toolDef{
		name:  "verify_audit",
		title: "Verify the audit chain",
		description: `Verify the tamper-evident audit chain: every step left an envelope (policy hash, state hash, projected output, module hash, and the SHA-256 of the step record, run record, input and program it stored) linked by SHA-256 to the one before. Reports ok, how many envelopes were checked, the first broken link (modified, deleted or reordered envelope) if any, and every stored record that no longer matches its envelope (changed, missing, or covered by none), by trace, step and record.

Use it after a run to prove what happened, or to check the whole store. With trace_id, checks that run's envelopes and their links; without, the whole chain, returning its head (seq and hash) to publish elsewhere. Read-only.

With checkpoint (a signed checkpoint note, as "nano-vm-mcp audit checkpoint" writes), also proves the chain extends it: signed by a verifier key the operator configured on the server (a key sent by a client would prove nothing, so none is accepted), naming this chain, with the checkpoint's hash at its seq. A chain rewritten wholesale since the checkpoint verifies on its own but fails this, naming the seq.

This argument's earlier name, execution_id, is accepted as a deprecated alias of trace_id for one release (both given must be equal).

Example: {"trace_id":"7f0c…"}`,
		input: closed(map[string]any{
			"trace_id":     str("A run's trace_id; omit to verify the whole chain."),
			"execution_id": deprecatedArg("trace_id"),
			"checkpoint":   str("A signed checkpoint note's full text; checks the whole chain against it (omit trace_id)."),
		}),
		output: object(map[string]any{
			"ok":        boolean("True when every checked link holds (and, with checkpoint, the chain extends it)."),
			"checked":   integer("Envelopes checked."),
			"head_seq":  integer("Last envelope's seq (whole-chain checks)."),
			"head_hash": str("Last envelope's hash (whole-chain checks)."),
			"broken": object(map[string]any{
				"seq":     integer("Where the chain breaks."),
				"problem": str("What kind of break."),
				"reason":  str("What is wrong."),
			}),
			"scope":           str(`"chain", "trace <id>" or "chain and checkpoint".`),
			"records_checked": integer("Stored records (steps, run records, inputs, programs) re-hashed against their envelopes."),
			"records":         array("Records that do not match their envelopes (at most 100); any makes ok false.", recordProblemSchema()),
			"records_omitted": integer("Record problems beyond those listed."),
			"tools":           array("With trace_id: the code each tool step ran, as its envelope (checked above) records it.", stepToolSchema()),
			"notes":           array("Runs whose records no envelope covers for a known reason (legacy, not covered yet); they do not make ok false.", recordProblemSchema()),
			"checkpoint": object(map[string]any{
				"ok":        boolean("True when the chain extends the checkpoint."),
				"origin":    str("The chain the checkpoint names."),
				"size":      integer("The checkpoint's head seq."),
				"hash":      str("The checkpoint's head hash (hex)."),
				"signed_by": str("The trusted key that signed it."),
				"problem":   str("untrusted key, bad signature, wrong origin, malformed, truncated, hash mismatch or chain broken."),
				"seq":       integer("Where the chain diverges from the checkpoint."),
				"reason":    str("What is wrong."),
			}),
		}, "ok", "checked", "scope"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		handler: withArgs((*Server).verifyAudit),
	}
}

// recordProblemSchema describes a store.RecordProblem.
func recordProblemSchema() map[string]any {
	return object(map[string]any{
		"trace_id":     str("The run the record belongs to."),
		"execution_id": deprecatedField("string", "trace_id"),
		"record":       str(`"step", "execution" (the run record), "input" or "program".`),
		"step_index":   integer("The step's index, for a step record."),
		"seq":          integer("The envelope that commits to the record; absent when none does."),
		"problem":      str(`"record changed", "record missing", "record not covered", "legacy, records not covered" or "not covered yet".`),
		"reason":       str("What is wrong."),
	}, "trace_id", "execution_id", "record", "problem", "reason")
}

func (s *Server) verifyAudit(ctx context.Context, req mcp.CallToolRequest, a verifyArgs) (any, error) {
	id, err := a.traceID()
	if err != nil {
		return nil, err
	}
	if a.Checkpoint != "" {
		if id != "" {
			return nil, argError("verify_audit: a checkpoint covers the whole chain: omit trace_id")
		}
		crep, err := s.rt.VerifyCheckpoint(ctx, []byte(a.Checkpoint))
		if err != nil {
			return nil, err
		}
		out := verifyOut{VerifyReport: crep.Chain, Scope: "chain and checkpoint", Checkpoint: &crep.Checkpoint}
		out.OK = crep.OK()
		return out, nil
	}
	rep, err := s.rt.VerifyAudit(ctx, id)
	if err != nil {
		return nil, err
	}
	scope := "chain"
	if id != "" {
		scope = "trace " + id
		// An unknown id would verify vacuously; say so instead. (A
		// deleted program's runs keep their envelopes, so this asks only
		// when there are none.)
		if rep.Checked == 0 {
			if _, err := s.rt.Trace(ctx, id, 0, 1); err != nil {
				return nil, err
			}
		}
	}
	out := verifyOut{VerifyReport: rep, Scope: scope}
	if id != "" {
		if out.Tools, err = s.stepTools(ctx, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}
