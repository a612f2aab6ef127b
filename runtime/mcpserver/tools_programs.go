package mcpserver

// The management tools list_programs, get_program and delete_program: the saved programs.

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/store"
)

type listProgramsArgs struct {
	Limit *int `json:"limit"`
}

type programItem struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

type programList struct {
	Programs []programItem `json:"programs"`
}

func listProgramsDef() toolDef {
	return toolDef{
		name:  "list_programs",
		title: "List saved programs",
		description: `List saved programs (saved with run_program's save_as), newest first: id, name, hash, created_at — not their steps (get_program has those).

Use it to find a program_id to run again with run_program {"program_id": …} or to inspect. limit defaults to 50, at most 100. Read-only.

Example: {"limit":10}`,
		input: closed(map[string]any{
			"limit": intRange("Programs to return.", 1, 100, 50),
		}),
		output: object(map[string]any{
			"programs": array("Saved programs, newest first.", object(map[string]any{
				"id":         str("The program's id."),
				"name":       str("The program's name."),
				"hash":       str("Canonical SHA-256 of the program."),
				"created_at": str("RFC 3339 time."),
			}, "id", "name")),
		}, "programs"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		handler: withArgs((*Server).listPrograms),
	}
}

func (s *Server) listPrograms(ctx context.Context, req mcp.CallToolRequest, a listProgramsArgs) (any, error) {
	limit, err := intArg("limit", a.Limit, 50, 1, 100)
	if err != nil {
		return nil, err
	}
	progs, err := s.rt.Programs(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := programList{Programs: []programItem{}}
	for _, p := range progs {
		out.Programs = append(out.Programs, programItem{ID: p.ID, Name: p.Name, Hash: p.Hash, CreatedAt: p.CreatedAt})
	}
	return out, nil
}

type programIDArgs struct {
	ProgramID string `json:"program_id"`
}

// programIDInput is the input schema of programIDArgs.
func programIDInput() map[string]any {
	return closed(map[string]any{
		"program_id": str("The saved program's id."),
	}, "program_id")
}

type programDoc struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Hash             string    `json:"hash"`
	CreatedAt        time.Time `json:"created_at"`
	Program          any       `json:"program"`
	ProgramTruncated bool      `json:"program_truncated,omitempty"`
}

func getProgramDef() toolDef {
	return toolDef{
		name:  "get_program",
		title: "Read a saved program",
		description: `Read a saved program: its steps as JSON, name, hash and when it was saved.

Use it to inspect or adapt a program before running it again (run_program with program_id runs it as saved). Read-only.

Example: {"program_id":"payment_pipeline"}`,
		input: programIDInput(),
		output: object(map[string]any{
			"id":                str("The program's id."),
			"name":              str("The program's name."),
			"hash":              str("Canonical SHA-256 of the program."),
			"created_at":        str("RFC 3339 time."),
			"program":           withDesc(object(map[string]any{}), "The program (a {truncated, bytes, preview} object if very large)."),
			"program_truncated": boolean("True when program holds a preview."),
		}, "id", "name", "hash", "program"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		handler: withArgs((*Server).getProgram),
	}
}

func (s *Server) getProgram(ctx context.Context, req mcp.CallToolRequest, a programIDArgs) (any, error) {
	if err := requireString("program_id", a.ProgramID); err != nil {
		return nil, err
	}
	p, err := s.rt.Program(ctx, a.ProgramID)
	if err != nil {
		return nil, err
	}
	return programDocOf(p), nil
}

func programDocOf(p store.Program) programDoc {
	d := programDoc{ID: p.ID, Name: p.Name, Hash: p.Hash, CreatedAt: p.CreatedAt}
	d.Program, d.ProgramTruncated = clip(json.RawMessage(p.Program), maxProgramBytes)
	return d
}

type deletedProgram struct {
	Deleted   bool   `json:"deleted"`
	ProgramID string `json:"program_id"`
}

func deleteProgramDef() toolDef {
	return toolDef{
		name:  "delete_program",
		title: "Delete a saved program",
		description: `Delete a saved program and its traces. Audit envelopes stay (the chain is append-only), so verify_audit still holds.

Use it only when the user wants the program gone; it cannot be undone. Deleting a program that does not exist is a not_found error.

Example: {"program_id":"payment_pipeline"}`,
		input: programIDInput(),
		output: object(map[string]any{
			"deleted":    boolean("Always true on success."),
			"program_id": str("The deleted program's id."),
		}, "deleted", "program_id"),
		readOnly: false, destructive: true, idempotent: true, openWorld: false,
		handler: withArgs((*Server).deleteProgram),
	}
}

func (s *Server) deleteProgram(ctx context.Context, req mcp.CallToolRequest, a programIDArgs) (any, error) {
	if err := requireString("program_id", a.ProgramID); err != nil {
		return nil, err
	}
	if err := s.rt.DeleteProgram(ctx, a.ProgramID); err != nil {
		return nil, err
	}
	return deletedProgram{Deleted: true, ProgramID: a.ProgramID}, nil
}
