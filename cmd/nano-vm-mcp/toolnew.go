package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"

	"github.com/nanovm/nano-vm-mcp/tools"
	csdk "github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/c"
)

// templates are the tool skeletons `tool new` writes, one folder per
// language; a file's name is its name in the new tool, NAME for the tool's
// name, without ".tmpl".
//
//go:embed templates
var templates embed.FS

// goSDKModule is the Go guest SDK's module path.
const goSDKModule = "github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go"

// cmdToolNew writes a tool skeleton: tool new NAME --lang go|c [--dir DIR].
func cmdToolNew(cmd *command, args []string, cio *cliIO) error {
	fset := newCommandFlags(cmd)
	lang := fset.String("lang", "", "the tool's language: go or c (required)")
	dir := fset.String("dir", ".", "the folder to create the tool's folder NAME in")
	sdk := fset.String("sdk", "", "Go only: the Go SDK folder (wasm-tools/sdk/go of a nano-vm-mcp checkout) for go.mod's replace line; default: the checkout this binary was built from, if it is still there")
	pos, err := parseFlags(cmd, fset, args, nil, cio)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("tool new takes one NAME, got %d: tool new NAME --lang go|c [--dir DIR]", len(pos))
	}
	name := pos[0]
	if *lang != "go" && *lang != "c" {
		return usagef("tool new: --lang must be go or c, not %q", *lang)
	}
	if checkToolName(name) != nil {
		return usagef("tool new: NAME %q must match %s (the manifest's name rule)", name, nameRule())
	}
	if *sdk != "" && *lang != "go" {
		return usagef("tool new: --sdk is for --lang go")
	}

	files, err := skeleton(*lang, name, *sdk, cio)
	if err != nil {
		return err
	}
	out := filepath.Join(*dir, name)
	if err := writeSkeleton(out, files); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		abs = out
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, f.name)
	}
	fmt.Fprintf(cio.stdout, "created %s (%s): %s\nnext:\n  %s\n  nano-vm-mcp tool add %s\n",
		abs, *lang, strings.Join(names, ", "), filepath.Join(abs, "build.sh"), abs)
	return nil
}

// nameRule is the tool-name rule, as the manifest validator words it.
func nameRule() string {
	err := checkToolName("")
	if err == nil {
		return "the manifest's name rule"
	}
	msg := err.Error()
	if i := strings.Index(msg, "name must match "); i >= 0 {
		return msg[i+len("name must match "):]
	}
	return msg
}

// checkToolName asks the manifest validator itself, so the rule has one
// home (tools.Manifest.Validate).
func checkToolName(name string) error {
	raw, err := json.Marshal(map[string]string{"name": name, "version": "0.1.0"})
	if err != nil {
		return err
	}
	if _, err := tools.ParseManifest(raw); err != nil {
		return fmt.Errorf("tool name %q: %w", name, err)
	}
	return nil
}

// skelFile is one file of a skeleton.
type skelFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// skeleton renders lang's templates for name, in template order.
func skeleton(lang, name, sdkFlag string, cio *cliIO) ([]skelFile, error) {
	data := struct{ Name, SDK string }{Name: name}
	if lang == "go" {
		sdk, err := goSDKDir(sdkFlag)
		if err != nil {
			return nil, err
		}
		if sdk == "" {
			fmt.Fprintf(cio.stderr, "nano-vm-mcp: the Go SDK folder was not found (this binary was not built from a checkout that still has it): go.mod's replace line is commented out; set it to your checkout's wasm-tools/sdk/go, or run tool new again with --sdk DIR\n")
		} else {
			data.SDK = modfile.AutoQuote(filepath.ToSlash(sdk))
		}
	}
	root := path.Join("templates", lang)
	entries, err := templates.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("tool new: templates for %s: %w", lang, err)
	}
	var files []skelFile
	for _, e := range entries {
		src, err := templates.ReadFile(path.Join(root, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("tool new: %w", err)
		}
		tmpl, err := template.New(e.Name()).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("tool new: template %s: %w", e.Name(), err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("tool new: template %s: %w", e.Name(), err)
		}
		fname := strings.TrimSuffix(e.Name(), ".tmpl")
		if fname == "tool.c" {
			fname = name + ".c"
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(fname, ".sh") {
			mode = 0o755
		}
		files = append(files, skelFile{name: fname, data: buf.Bytes(), mode: mode})
	}
	if lang == "c" { // the C SDK travels with the tool: one header, one script
		files = append(files,
			skelFile{name: "nanovm.h", data: csdk.Header, mode: 0o644},
			skelFile{name: "nanovm-cc", data: csdk.Compiler, mode: 0o755})
	}
	return files, nil
}

// goSDKDir is the Go SDK folder for go.mod's replace line: the flag's, or
// the one in the source tree this binary was built from, or "" if that is
// gone (or the binary was built with -trimpath).
func goSDKDir(flagDir string) (string, error) {
	if flagDir != "" {
		abs, err := filepath.Abs(flagDir)
		if err != nil {
			return "", fmt.Errorf("tool new: --sdk: %w", err)
		}
		if err := isGoSDK(abs); err != nil {
			return "", usagef("tool new: --sdk %s: %v", flagDir, err)
		}
		return abs, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", nil
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "wasm-tools", "sdk", "go")
	if isGoSDK(dir) != nil {
		return "", nil
	}
	return dir, nil
}

// isGoSDK checks that dir holds the Go SDK's go.mod.
func isGoSDK(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("not the Go SDK folder: %w", err)
	}
	if got := modfile.ModulePath(raw); got != goSDKModule {
		return fmt.Errorf("not the Go SDK folder: its go.mod is module %q, want %q", got, goSDKModule)
	}
	return nil
}

// errToolExists refuses to write over a user's files.
var errToolExists = errors.New("already exists")

// writeSkeleton creates dir (it may exist, empty of these files) and
// writes files into it; it overwrites nothing.
func writeSkeleton(dir string, files []skelFile) error {
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("tool new: %s: %w (nothing written; choose another NAME or --dir)", p, errToolExists)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tool new: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("tool new: %w", err)
		}
		_, err = fh.Write(f.data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("tool new: write %s: %w", p, err)
		}
	}
	return nil
}
