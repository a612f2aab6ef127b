package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dbArgs are the flags of an isolated database for an in-process command.
func dbArgs(t *testing.T) []string {
	t.Helper()
	return []string{"--db", filepath.Join(t.TempDir(), "cli.db"), "--cache-dir", sharedCache}
}

// runPayment runs the payment_pipeline example with the CLI on the
// database d names and returns what run printed and the trace id match
// (id[1]).
func runPayment(t *testing.T, d []string) (string, []string) {
	t.Helper()
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	code, ran, errOut := runCLI(t, "", append([]string{"run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"),
		"--policy", example("payment_pipeline", "policy.json")}, d...)...)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, ran, errOut)
	}
	id := regexp.MustCompile(`trace (\S+)\n`).FindStringSubmatch(ran)
	if id == nil {
		t.Fatalf("no trace id in %s", ran)
	}
	return ran, id
}

// Ensure trace show prints the very table run printed for the same run,
// and that its --limit, --offset, --status and --json flags do what they
// say.
func TestTraceShow(t *testing.T) {
	d := dbArgs(t)
	ran, id := runPayment(t, d)
	show := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, "", append(append([]string{"trace", "show", id[1]}, args...), d...)...)
		if code != 0 {
			t.Fatalf("trace show %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	stepLine := regexp.MustCompile(`(?m)^  #(\d+) `)
	steps := func(out string) string {
		var idx []string
		for _, m := range stepLine.FindAllStringSubmatch(out, -1) {
			idx = append(idx, m[1])
		}
		return strings.Join(idx, ",")
	}

	if out := show(); out != ran {
		t.Fatalf("trace show differs from what run printed:\nrun:\n%s\ntrace show:\n%s", ran, out)
	}
	tests := []struct {
		name      string
		args      []string
		wantSteps string
		wantMore  string
	}{
		{name: "all", wantSteps: "0,1,2,3"},
		{name: "limit", args: []string{"--limit", "2"}, wantSteps: "0,1", wantMore: "--offset 2"},
		{name: "offset", args: []string{"--offset", "2", "--limit", "1"}, wantSteps: "2", wantMore: "--offset 3"},
		{name: "status kept", args: []string{"--status", "success"}, wantSteps: "0,1,2,3"},
		{name: "status none", args: []string{"--status", "failed"}, wantSteps: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := show(tt.args...)
			if got := steps(out); got != tt.wantSteps {
				t.Fatalf("steps %q, want %q:\n%s", got, tt.wantSteps, out)
			}
			if tt.wantMore != "" && !strings.Contains(out, "trace show "+id[1]+" "+tt.wantMore) {
				t.Fatalf("no hint to %s:\n%s", tt.wantMore, out)
			}
		})
	}
	var tv struct {
		TraceID    string `json:"trace_id"`
		TotalSteps int    `json:"total_steps"`
		Steps      []struct {
			Index int `json:"index"`
		} `json:"steps"`
		NextOffset *int `json:"next_offset"`
	}
	if err := json.Unmarshal([]byte(show("--json", "--offset", "1", "--limit", "2")), &tv); err != nil {
		t.Fatal(err)
	}
	if tv.TraceID != id[1] || tv.TotalSteps != 4 || len(tv.Steps) != 2 || tv.Steps[0].Index != 1 || tv.NextOffset == nil || *tv.NextOffset != 3 {
		t.Fatalf("--json --offset 1 --limit 2: %+v", tv)
	}
	code, _, errOut := runCLI(t, "", append([]string{"trace", "show", id[1], "--limit", "0"}, d...)...)
	if code != 2 || !strings.Contains(errOut, "--limit must be positive") {
		t.Fatalf("--limit 0: exit %d %s", code, errOut)
	}
}

// Ensure tool add takes what a user has: a folder whatever its module is
// called, ".", a .wasm with --manifest, with a manifest.json beside it, or
// with flags; and that its mistakes say what to do, the naming rule
// included.
func TestToolAdd(t *testing.T) {
	m := bundledModule(t, "validate_amount")
	base := t.TempDir()
	write := func(rel string, data []byte) string {
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	renamed := func(name string) []byte {
		b, _ := json.Marshal(editedManifest(t, m, name, nil))
		return b
	}
	write("odd/manifest.json", renamed("from_folder"))
	write("odd/whatever-build-output.wasm", m.Wasm)
	write("dot/manifest.json", renamed("from_dot"))
	write("dot/dot_tool.wasm", m.Wasm)
	write("mod/tool.wasm", m.Wasm)
	write("elsewhere/spec.json", renamed("from_manifest_flag"))
	write("beside/manifest.json", renamed("from_beside"))
	write("beside/b.wasm", m.Wasm)
	write("bare/Counter.wasm", m.Wasm)
	write("two/manifest.json", renamed("two"))
	write("two/a.wasm", m.Wasm)
	write("two/b.wasm", m.Wasm)
	write("twonamed/manifest.json", renamed("picked"))
	write("twonamed/picked.wasm", m.Wasm)
	write("twonamed/other.wasm", m.Wasm)
	write("empty/manifest.json", renamed("empty"))
	write("notwasm/manifest.json", renamed("notwasm"))
	write("notwasm/x.wasm", []byte("not a module"))
	write("legacy/m.json", renamed("legacy"))
	write("legacy/l.wasm", m.Wasm)
	write("badname/manifest.json", renamed("Bad Name"))
	write("badname/x.wasm", m.Wasm)

	d := append(dbArgs(t), "--no-bundled-tools")
	tests := []struct {
		name     string
		dir      string // working folder; "" stays
		args     []string
		code     int
		want     string // in stdout (code 0) or stderr
		wantCaps []string
	}{
		{name: "folder, module under any name", args: []string{filepath.Join(base, "odd")}, want: "registered from_folder@sha256:"},
		{name: "dot", dir: filepath.Join(base, "dot"), args: []string{"."}, want: "registered from_dot@sha256:"},
		{name: "wasm and --manifest", args: []string{filepath.Join(base, "mod/tool.wasm"), "--manifest", filepath.Join(base, "elsewhere/spec.json")}, want: "registered from_manifest_flag@"},
		{name: "wasm, manifest beside it", args: []string{filepath.Join(base, "beside/b.wasm")}, want: "registered from_beside@"},
		{name: "wasm and flags", args: []string{filepath.Join(base, "mod/tool.wasm"), "--name", "from_flags", "--description", "made by flags", "--capability", "wasi:clock", "--capability", "nanovm:log"},
			want: "registered from_flags@", wantCaps: []string{"wasi:clock", "nanovm:log"}},
		{name: "flags override the manifest", args: []string{filepath.Join(base, "beside"), "--name", "renamed_one"}, want: "registered renamed_one@"},
		{name: "older form, either order", args: []string{filepath.Join(base, "legacy/l.wasm"), filepath.Join(base, "legacy/m.json")}, want: "registered legacy@"},
		{name: "several modules, one named after the tool", args: []string{filepath.Join(base, "twonamed")}, want: "registered picked@"},

		{name: "bare wasm: its file name is no tool name", args: []string{filepath.Join(base, "bare/Counter.wasm")}, code: 2, want: `name "Counter". A tool's name is how programs call it: a lowercase letter`},
		{name: "bad name in the manifest", args: []string{filepath.Join(base, "badname")}, code: 2, want: "up to 63 lowercase letters, digits, '_', '.' or '-'"},
		{name: "several modules, none named", args: []string{filepath.Join(base, "two")}, code: 1, want: "2 .wasm files (a.wasm, b.wasm) and none is named after the tool (two.wasm)"},
		{name: "no module", args: []string{filepath.Join(base, "empty")}, code: 1, want: "no .wasm file in it (a tool folder holds manifest.json and one .wasm file)"},
		{name: "not a module", args: []string{filepath.Join(base, "notwasm")}, code: 1, want: "is not a WebAssembly module"},
		{name: "a manifest alone", args: []string{filepath.Join(base, "legacy/m.json")}, code: 2, want: "give the tool's folder (tool add DIR) or its module"},
		{name: "nothing there", args: []string{filepath.Join(base, "nope")}, code: 1, want: "give a tool folder or its .wasm file"},
		{name: "no argument", args: nil, code: 2, want: "tool add takes one tool folder or .wasm file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dir != "" {
				t.Chdir(tt.dir)
			}
			code, out, errOut := runCLI(t, "", append(append([]string{"tool", "add"}, tt.args...), d...)...)
			got := out
			if tt.code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Fatalf("exit %d, want %d and %q\nstdout: %s\nstderr: %s", code, tt.code, tt.want, out, errOut)
			}
			if tt.wantCaps == nil {
				return
			}
			name := strings.TrimPrefix(strings.SplitN(out, "@", 2)[0], "registered ")
			_, shown, _ := runCLI(t, "", append([]string{"tool", "show", name}, d...)...)
			var rec struct {
				Manifest struct {
					Description  string   `json:"description"`
					Capabilities []string `json:"capabilities"`
				} `json:"manifest"`
			}
			if err := json.Unmarshal([]byte(shown), &rec); err != nil {
				t.Fatalf("%v: %s", err, shown)
			}
			if strings.Join(rec.Manifest.Capabilities, ",") != strings.Join(tt.wantCaps, ",") || rec.Manifest.Description != "made by flags" {
				t.Fatalf("manifest from flags: %+v", rec.Manifest)
			}
		})
	}
}

// Ensure the CLI is quiet by default and says what matters: the no-policy
// warning once, and only from the commands that run tools;
// NANO_VM_MCP_LOG_LEVEL honoured by every command; each tool the tools
// folder skips named, with why, on one warn line.
func TestQuietByDefault(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	t.Setenv("NANO_VM_MCP_POLICY", "")
	d := dbArgs(t)
	program := []string{"run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json")}

	t.Run("run warns once", func(t *testing.T) {
		code, out, errOut := runCLI(t, "", append(program, d...)...)
		if code != 0 || strings.Count(errOut, noPolicyWarning) != 1 {
			t.Fatalf("exit %d, %d no-policy warnings:\n%s\n%s", code, strings.Count(errOut, noPolicyWarning), out, errOut)
		}
	})
	for _, args := range [][]string{{"tool", "ls"}, {"trace", "ls"}, {"secret", "ls"}, {"audit", "verify"}, {"tool", "rm", "validate_amount"}} {
		t.Run(strings.Join(args, " ")+" does not warn", func(t *testing.T) {
			code, _, errOut := runCLI(t, "", append(args, d...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
		})
	}
	t.Run("once per process", func(t *testing.T) {
		// As a stdio server that becomes the primary again opens anew.
		var errb strings.Builder
		cio := &cliIO{stdout: &strings.Builder{}, stderr: &errb}
		for range 2 {
			fs, c := newFlags(root.find("run"), cio)
			if _, err := c.parse(fs, append([]string{"--no-bundled-tools"}, d...)); err != nil {
				t.Fatal(err)
			}
			rt, err := c.open(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			rt.Close()
		}
		if n := strings.Count(errb.String(), noPolicyWarning); n != 1 {
			t.Fatalf("%d no-policy warnings in one process:\n%s", n, errb.String())
		}
	})
	t.Run("policy warnings: once, and only where tools run", func(t *testing.T) {
		pol := filepath.Join(t.TempDir(), "policy.json")
		if err := os.WriteFile(pol, []byte(`{"policy_id": "p", "version": "1", "tool_capabilities": {"validate_amount": [], "reserve_funds": [], "capture_payment": [], "send_receipt": [], "vaulty": ["nanovm:secrets"]}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		const warning = `policy: tool \"vaulty\" holds nanovm:secrets`
		code, _, errOut := runCLI(t, "", append(append(program, "--policy", pol), d...)...)
		if code != 0 || strings.Count(errOut, warning) != 1 || strings.Contains(errOut, noPolicyWarning) {
			t.Fatalf("run: exit %d, stderr:\n%s", code, errOut)
		}
		code, _, errOut = runCLI(t, "", append([]string{"trace", "ls", "--policy", pol}, d...)...)
		if code != 0 || errOut != "" {
			t.Fatalf("trace ls: exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("NANO_VM_MCP_LOG_LEVEL=error silences run", func(t *testing.T) {
		t.Setenv("NANO_VM_MCP_LOG_LEVEL", "error")
		code, _, errOut := runCLI(t, "", append(program, dbArgs(t)...)...)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("NANO_VM_MCP_LOG_LEVEL=info reaches admin commands", func(t *testing.T) {
		t.Setenv("NANO_VM_MCP_LOG_LEVEL", "info")
		code, _, errOut := runCLI(t, "", append([]string{"trace", "ls"}, d...)...)
		if code != 0 || !strings.Contains(errOut, "level=INFO msg=ceilings") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("a bad level is a usage error", func(t *testing.T) {
		t.Setenv("NANO_VM_MCP_LOG_LEVEL", "loud")
		code, _, errOut := runCLI(t, "", append([]string{"trace", "ls"}, d...)...)
		if code != 2 || !strings.Contains(errOut, `--log-level (NANO_VM_MCP_LOG_LEVEL) "loud"`) {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("tools folder says what it skipped", func(t *testing.T) {
		m := bundledModule(t, "validate_amount")
		dir := t.TempDir()
		write := func(rel string, data []byte) {
			p := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var mf map[string]any
		json.Unmarshal(m.Manifest, &mf)
		mf["name"] = "good_one"
		good, _ := json.Marshal(mf)
		write("good_one/manifest.json", good)
		write("good_one/built.wasm", m.Wasm)
		write("no_module/manifest.json", good)
		write("bad_manifest/manifest.json", []byte(`{"name": "bad_manifest", "colour": "blue"}`))
		write("bad_manifest/bad_manifest.wasm", m.Wasm)
		write("stray.wasm", m.Wasm)
		write("README.md", []byte("notes"))
		code, out, errOut := runCLI(t, "", append([]string{"tool", "ls", "--no-bundled-tools", "--tools-dir", dir}, dbArgs(t)...)...)
		if code != 0 || !strings.Contains(out, "good_one") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var warns []string
		for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if strings.Contains(l, "level=WARN") {
				warns = append(warns, l)
			}
		}
		wants := []string{"bad_manifest", "no_module", "stray.wasm"}
		if len(warns) != len(wants) {
			t.Fatalf("%d warn lines, want %d:\n%s", len(warns), len(wants), errOut)
		}
		reasons := []string{`unknown field \"colour\"`, "no .wasm file in it", "a tool is a folder holding manifest.json and one .wasm file"}
		for i, w := range warns {
			if !strings.Contains(w, wants[i]) || !strings.Contains(w, reasons[i]) {
				t.Errorf("warn line %d does not name %s and why (%s): %s", i, wants[i], reasons[i], w)
			}
		}
		if strings.Contains(errOut, "README") {
			t.Errorf("a file that is no tool is reported: %s", errOut)
		}
	})
}
