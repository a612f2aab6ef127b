package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden help texts in testdata/")

// Ensure the program's help and each group's list their commands, one
// line each, matching the golden texts in testdata/ (refresh with
// go test ./cmd/nano-vm-mcp -run TestHelpGolden -update).
func TestHelpGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "root", args: []string{"--help"}},
		{name: "tool", args: []string{"tool", "--help"}},
		{name: "trace", args: []string{"trace", "--help"}},
		{name: "audit", args: []string{"audit", "help"}},
		{name: "secret", args: []string{"help", "secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden := filepath.Join("testdata", "help-"+tt.name+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Fatalf("help differs from %s (run with -update if intended):\n%s", golden, out)
			}
		})
	}
}

// Ensure every command in the table answers --help (and "help CMD"):
// exit 0, on stdout, its usage line, each positional argument of its
// synopsis explained under "Arguments:", and each of its own flags; and
// every group lists every subcommand with its summary.
func TestEveryCommandHasHelp(t *testing.T) {
	placeholder := regexp.MustCompile(`^[A-Z][A-Z_]*(\.[a-z]+)?$`)
	var walk func(c *command)
	walk = func(c *command) {
		for _, s := range c.subs {
			walk(s)
		}
		if c.parent == nil || c.name == "help" { // help's help is the program's
			return
		}
		path := strings.Fields(c.path())[1:]
		t.Run(strings.Join(path, "_"), func(t *testing.T) {
			if c.summary == "" {
				t.Fatal("no summary")
			}
			for _, args := range [][]string{append(append([]string(nil), path...), "--help"), append([]string{"help"}, path...)} {
				code, out, errOut := runCLI(t, "", args...)
				if code != 0 || errOut != "" || out == "" {
					t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
				}
				if c.subs != nil {
					for _, s := range c.subs {
						if !strings.Contains(out, s.name) || !strings.Contains(out, s.summary) {
							t.Errorf("%v: does not list %s: %s", args, s.name, out)
						}
					}
					continue
				}
				if !strings.HasPrefix(out, "usage: "+c.path()) {
					t.Errorf("%v: no usage line:\n%s", args, out)
				}
				for _, a := range strings.Fields(shortArgs(c.args)) {
					if a == "|" || !placeholder.MatchString(a) {
						continue
					}
					if !strings.Contains(out, "Arguments:") || !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(a)+` `).MatchString(out) {
						t.Errorf("%v: positional %s is not explained under Arguments:\n%s", args, a, out)
					}
				}
				for _, f := range regexp.MustCompile(`--[a-z-]+`).FindAllString(c.args, -1) {
					if !strings.Contains(out, "  "+f+" ") {
						t.Errorf("%v: flag %s of the synopsis is not listed:\n%s", args, f, out)
					}
				}
			}
		})
	}
	walk(root)
}

// Ensure a group without a subcommand, or with an unknown one, is a
// usage error that lists the subcommands and points to the group's help.
func TestGroupUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"tool"}, "tool needs a subcommand: add, pull, push, new, ls, show, rm"},
		{[]string{"trace", "lst"}, `unknown subcommand "lst" of trace; want one of: ls, show`},
		{[]string{"audit"}, "audit needs a subcommand: verify, checkpoint, keygen"},
		{[]string{"secret", "get"}, "want one of: put, ls, erase"},
		{[]string{"tool", "show"}, "tool show NAME: want one tool name"},
	} {
		code, _, errOut := runCLI(t, "", append(tt.args, "--db", filepath.Join(t.TempDir(), "u.db"), "--cache-dir", "-")...)
		if code != 2 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "--help\" for usage") {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}
