package mcpserver

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

var update = flag.Bool("update", false, "rewrite the tool-schema snapshots under testdata/toolsnaps")

// listed returns the management tools as a client sees them (registered
// tools not exposed: exposed_test.go covers their listing).
func listed(t *testing.T) []mcp.Tool {
	t.Helper()
	opts := DefaultOptions()
	opts.ExposeTools = ExposeNone
	s := newServer(t, opts)
	c, _ := inProcess(t, s)
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Tools
}

// Ensure every tool's schema matches its golden snapshot: a changed or
// missing snapshot fails until reviewed and rewritten with -update.
func TestToolSnapshots(t *testing.T) {
	tools := listed(t)
	seen := map[string]bool{}
	for _, tool := range tools {
		t.Run(tool.Name, func(t *testing.T) {
			got, err := json.MarshalIndent(tool, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "toolsnaps", tool.Name+".json")
			seen[filepath.Base(path)] = true
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no snapshot (run go test -run TestToolSnapshots -update): %v", err)
			}
			if string(want) != string(got) {
				t.Fatalf("%s changed; review and rerun with -update.\ngot:\n%s", path, got)
			}
		})
	}
	// A snapshot without a tool is a removed tool nobody noticed.
	entries, err := os.ReadDir(filepath.Join("testdata", "toolsnaps"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("snapshot %s has no tool", e.Name())
		}
	}
}

// Ensure every tool is fit for a model: unique name, a description under
// Claude Code's 2 KB cut with an example, a title and all four hints set
// explicitly, a closed object input schema, and an object output schema.
func TestToolsMeta(t *testing.T) {
	tools := listed(t)
	names := map[string]bool{}
	for _, tool := range tools {
		t.Run(tool.Name, func(t *testing.T) {
			if names[tool.Name] {
				t.Fatal("duplicate name")
			}
			names[tool.Name] = true
			if tool.Description == "" || len(tool.Description) >= maxDescription || !strings.Contains(tool.Description, "Example: {") {
				t.Fatalf("description (%d bytes) must be set, under %d, with an example", len(tool.Description), maxDescription)
			}
			a := tool.Annotations
			if a.Title == "" || a.ReadOnlyHint == nil || a.DestructiveHint == nil || a.IdempotentHint == nil || a.OpenWorldHint == nil {
				t.Fatalf("annotations not all set: %+v", a)
			}
			if *a.ReadOnlyHint && *a.DestructiveHint {
				t.Fatal("read-only and destructive")
			}
			var in, out map[string]any
			if err := json.Unmarshal(tool.RawInputSchema, &in); err != nil {
				raw, _ := json.Marshal(tool.InputSchema)
				if err := json.Unmarshal(raw, &in); err != nil {
					t.Fatal(err)
				}
			}
			if in["type"] != "object" || in["additionalProperties"] != false {
				t.Fatalf("input schema: %v", in)
			}
			if err := json.Unmarshal(tool.RawOutputSchema, &out); err != nil {
				raw, _ := json.Marshal(tool.OutputSchema)
				if err := json.Unmarshal(raw, &out); err != nil {
					t.Fatal(err)
				}
			}
			if out["type"] != "object" || out["properties"] == nil {
				t.Fatalf("output schema: %v", out)
			}
		})
	}
	if len(instructions) >= 2048 {
		t.Fatalf("instructions are %d bytes", len(instructions))
	}
}

// Ensure the hints that matter for a client's confirmation prompts are
// what the tools do.
func TestAnnotationsTruthful(t *testing.T) {
	want := map[string][4]bool{ // readOnly, destructive, idempotent, openWorld
		"run_program":    {false, true, false, true},
		"resume_program": {false, true, false, true},
		"get_trace":      {true, false, true, false},
		"list_traces":    {true, false, true, false},
		"delete_program": {false, true, true, false},
		"erase_secret":   {false, true, false, false},
		"remove_tool":    {false, true, true, false},
		"register_tool":  {false, false, true, false},
		"verify_audit":   {true, false, true, false},
	}
	for _, tool := range listed(t) {
		w, found := want[tool.Name]
		if !found {
			continue
		}
		a := tool.Annotations
		got := [4]bool{*a.ReadOnlyHint, *a.DestructiveHint, *a.IdempotentHint, *a.OpenWorldHint}
		if got != w {
			t.Errorf("%s: hints %v, want %v", tool.Name, got, w)
		}
	}
}
