package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// toolAddFlags are tool add's own flags: where the manifest is, and the
// fields that override it (or make one).
type toolAddFlags struct {
	manifest, name, description, version string
	capabilities                         stringList
	set                                  map[string]bool
}

// cmdToolAdd registers a tool from what a user has: its folder (".", a
// path), a .wasm file with --manifest or a manifest.json beside it, or a
// .wasm file and flags; see the "add" entry of commandTable.
func cmdToolAdd(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	var f toolAddFlags
	fs.StringVar(&f.manifest, "manifest", "", "the tool's manifest file (default DIR/manifest.json, or manifest.json beside MODULE.wasm)")
	fs.StringVar(&f.name, "name", "", "the tool's name; overrides the manifest's (see the naming rule above)")
	fs.StringVar(&f.description, "description", "", "what the tool does, for clients and models; overrides the manifest's")
	fs.StringVar(&f.version, "version", "", "a version label for people; overrides the manifest's")
	fs.Var(&f.capabilities, "capability", "a capability the tool asks for, repeated for each ("+capabilityList()+"); replaces the manifest's list")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	manifest, wasm, from, err := f.resolve(pos)
	if err != nil {
		return err
	}
	ctx := context.Background()
	rt, err := c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	rec, err := rt.RegisterToolLocal(ctx, manifest, wasm)
	if err != nil {
		return fmt.Errorf("tool add %s: %w", from, err)
	}
	fmt.Fprintf(cio.stdout, "registered %s@sha256:%s\n", rec.Name, rec.ModuleSHA256)
	return nil
}

func capabilityList() string {
	cs := tools.Capabilities()
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return strings.Join(out, ", ")
}

// resolve finds the manifest and the module the arguments name, applies
// the override flags and checks the name, so that a mistake is reported
// before the database is opened. from names the source, for messages.
func (f *toolAddFlags) resolve(pos []string) (manifest, wasm []byte, from string, err error) {
	var manifestPath, wasmPath string
	switch len(pos) {
	case 1:
		from = pos[0]
		st, err := os.Stat(pos[0])
		if err != nil {
			return nil, nil, "", fmt.Errorf("tool add: %w (give a tool folder or its .wasm file)", err)
		}
		switch {
		case st.IsDir():
			manifestPath = filepath.Join(pos[0], "manifest.json")
			if f.manifest != "" {
				manifestPath = f.manifest
			}
			if wasmPath, err = runtime.FindToolModule(pos[0], f.manifestName(manifestPath)); err != nil {
				return nil, nil, "", fmt.Errorf("tool add: %w", err)
			}
			if f.manifest == "" && !exists(manifestPath) {
				if !f.set["name"] {
					return nil, nil, "", usagef("tool add %s: no manifest.json in the folder: write one, or give --manifest FILE, or --name NAME [--description D] [--capability C]...", pos[0])
				}
				manifestPath = ""
			}
		case strings.HasSuffix(pos[0], ".json"):
			return nil, nil, "", usagef("tool add %s: give the tool's folder (tool add DIR) or its module (tool add MODULE.wasm --manifest %s)", pos[0], pos[0])
		default:
			wasmPath = pos[0]
			switch beside := filepath.Join(filepath.Dir(pos[0]), "manifest.json"); {
			case f.manifest != "":
				manifestPath = f.manifest
			case exists(beside):
				manifestPath = beside
			}
		}
	case 2: // the older form: MANIFEST.json MODULE.wasm, in either order
		manifestPath, wasmPath = pos[0], pos[1]
		if strings.HasSuffix(pos[0], ".wasm") && strings.HasSuffix(pos[1], ".json") {
			manifestPath, wasmPath = pos[1], pos[0]
		}
		from = wasmPath
	default:
		return nil, nil, "", usagef("tool add takes one tool folder or .wasm file (or MANIFEST.json MODULE.wasm), got %d arguments", len(pos))
	}
	if wasm, err = os.ReadFile(wasmPath); err != nil {
		return nil, nil, "", fmt.Errorf("tool add: read module: %w", err)
	}
	if len(wasm) < 4 || string(wasm[:4]) != "\x00asm" {
		return nil, nil, "", fmt.Errorf("tool add: %s is not a WebAssembly module (it does not start with \\0asm)", wasmPath)
	}
	fields := map[string]any{}
	if manifestPath != "" {
		data, err := os.ReadFile(manifestPath)
		if err != nil {
			return nil, nil, "", fmt.Errorf("tool add: read manifest: %w", err)
		}
		if len(f.set) == 0 || (len(f.set) == 1 && f.set["manifest"]) {
			manifest = data // as written: the registry decodes it strictly
		} else if err := json.Unmarshal(data, &fields); err != nil {
			return nil, nil, "", fmt.Errorf("tool add: manifest %s: %w", manifestPath, err)
		}
	} else if !f.set["name"] {
		f.name = strings.TrimSuffix(filepath.Base(wasmPath), ".wasm")
		f.set["name"] = true
	}
	if manifest == nil {
		for name, v := range map[string]string{"name": f.name, "description": f.description, "version": f.version} {
			if f.set[name] {
				fields[name] = v
			}
		}
		if f.set["capability"] {
			fields["capabilities"] = []string(f.capabilities)
		}
		if manifest, err = json.Marshal(fields); err != nil {
			return nil, nil, "", fmt.Errorf("tool add: %w", err)
		}
	}
	var named struct {
		Name *string `json:"name"`
	}
	if json.Unmarshal(manifest, &named) == nil && (named.Name == nil || !validToolName(*named.Name)) {
		got := "no name"
		if named.Name != nil {
			got = fmt.Sprintf("name %q", *named.Name)
		}
		return nil, nil, "", usagef("tool add %s: %s. %s Set it in the manifest or with --name.", from, got, strings.ReplaceAll(toolNameRule, "\n", " "))
	}
	return manifest, wasm, from, nil
}

// manifestName is the name in the manifest at path, or --name: which of
// several .wasm files in a folder is the tool's.
func (f *toolAddFlags) manifestName(path string) string {
	if f.name != "" {
		return f.name
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(data, &named)
	return named.Name
}

// validToolName applies the registry's own rule (tools.Manifest.Validate).
func validToolName(name string) bool {
	return (&tools.Manifest{Name: name}).Validate() == nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
