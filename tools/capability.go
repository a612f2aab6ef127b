package tools

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Capability names a group of host imports a tool may be granted. The
// exact import names of each are in capabilityImports and in
// docs/tool-abi.md.
type Capability string

// The capabilities a manifest may ask for.
const (
	// CapStdio is stdin/stdout/stderr, args, environment, exit, and the
	// clock and random imports backed by deterministic sources. Every tool
	// holds it; a manifest need not list it.
	CapStdio Capability = "wasi:stdio"
	// CapClock swaps the deterministic clock for the host's real clocks
	// and real sleeping. It adds no imports: clock_time_get and poll_oneoff
	// are in CapStdio, deterministic without this capability.
	CapClock Capability = "wasi:clock"
	// CapRandom swaps the deterministic random source for crypto/rand. It
	// adds no imports: random_get is in CapStdio.
	CapRandom Capability = "wasi:random"
	// CapFS links the WASI filesystem imports and the manifest's mounts.
	CapFS Capability = "wasi:fs"
	// CapLog links nanovm.log.
	CapLog Capability = "nanovm:log"
	// CapSecrets links nanovm.secret_get.
	CapSecrets Capability = "nanovm:secrets"
	// CapHTTP links nanovm.http_request, limited to the allowed hosts.
	CapHTTP Capability = "nanovm:http"
	// CapState links nanovm.state_get: the JSON of the state projection
	// the caller put in CallRequest.State, and nothing more.
	CapState Capability = "nanovm:state"
)

// wasiModule and nanovmModule are import modules a guest may use; the
// third is extismEnvModule (extism.go).
const (
	wasiModule   = "wasi_snapshot_preview1"
	nanovmModule = "nanovm"
)

// capabilityImports maps each capability to the imports it links. An import
// listed nowhere (sock_*, any other module) is never linked.
var capabilityImports = map[Capability][]string{
	CapStdio: append([]string{
		"wasi_snapshot_preview1.args_get", "wasi_snapshot_preview1.args_sizes_get",
		"wasi_snapshot_preview1.environ_get", "wasi_snapshot_preview1.environ_sizes_get",
		"wasi_snapshot_preview1.clock_res_get", "wasi_snapshot_preview1.clock_time_get",
		"wasi_snapshot_preview1.fd_close", "wasi_snapshot_preview1.fd_fdstat_get",
		"wasi_snapshot_preview1.fd_fdstat_set_flags", "wasi_snapshot_preview1.fd_prestat_get",
		"wasi_snapshot_preview1.fd_prestat_dir_name", "wasi_snapshot_preview1.fd_read",
		"wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.fd_seek",
		"wasi_snapshot_preview1.poll_oneoff", "wasi_snapshot_preview1.proc_exit",
		"wasi_snapshot_preview1.random_get", "wasi_snapshot_preview1.sched_yield",
	}, extismImports(CapStdio)...),
	CapClock:  nil,
	CapRandom: nil,
	CapFS: {
		"wasi_snapshot_preview1.fd_advise", "wasi_snapshot_preview1.fd_allocate",
		"wasi_snapshot_preview1.fd_datasync", "wasi_snapshot_preview1.fd_fdstat_set_rights",
		"wasi_snapshot_preview1.fd_filestat_get", "wasi_snapshot_preview1.fd_filestat_set_size",
		"wasi_snapshot_preview1.fd_filestat_set_times", "wasi_snapshot_preview1.fd_pread",
		"wasi_snapshot_preview1.fd_pwrite", "wasi_snapshot_preview1.fd_readdir",
		"wasi_snapshot_preview1.fd_renumber", "wasi_snapshot_preview1.fd_sync",
		"wasi_snapshot_preview1.fd_tell", "wasi_snapshot_preview1.path_create_directory",
		"wasi_snapshot_preview1.path_filestat_get", "wasi_snapshot_preview1.path_filestat_set_times",
		"wasi_snapshot_preview1.path_link", "wasi_snapshot_preview1.path_open",
		"wasi_snapshot_preview1.path_readlink", "wasi_snapshot_preview1.path_remove_directory",
		"wasi_snapshot_preview1.path_rename", "wasi_snapshot_preview1.path_symlink",
		"wasi_snapshot_preview1.path_unlink_file",
	},
	CapLog:     append([]string{"nanovm.log"}, extismImports(CapLog)...),
	CapSecrets: {"nanovm.secret_get"},
	CapHTTP:    append([]string{"nanovm.http_request"}, extismImports(CapHTTP)...),
	CapState:   {"nanovm.state_get"},
}

// importCapability is the inverse of capabilityImports.
var importCapability = func() map[string]Capability {
	m := map[string]Capability{}
	for c, imports := range capabilityImports {
		for _, i := range imports {
			m[i] = c
		}
	}
	return m
}()

// Valid reports whether c is a capability this host knows.
func (c Capability) Valid() bool {
	_, ok := capabilityImports[c]
	return ok
}

// String implements fmt.Stringer.
func (c Capability) String() string { return string(c) }

// Capabilities lists every known capability, sorted.
func Capabilities() []Capability {
	out := make([]Capability, 0, len(capabilityImports))
	for c := range capabilityImports {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// ImportsOf returns the "module.name" imports c links, sorted.
func ImportsOf(c Capability) []string {
	return slices.Sorted(slices.Values(capabilityImports[c]))
}

// capSet is an effective set of capabilities. CapStdio is always in it.
type capSet map[Capability]bool

func newCapSet(caps []string) capSet {
	s := capSet{CapStdio: true}
	for _, c := range caps {
		s[Capability(c)] = true
	}
	return s
}

// key is a canonical string for caching linked host modules per set.
func (s capSet) key() string {
	names := make([]string, 0, len(s))
	for c, ok := range s {
		if ok {
			names = append(names, string(c))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// allows reports whether the import "module.name" is linked by s.
func (s capSet) allows(imp string) bool {
	c, ok := importCapability[imp]
	return ok && s[c]
}

// gateA is gate A: every import must be a function that s links, declared
// with the host function's own signature. It names every import that is
// not, with the capability that would grant it, or both signatures. A
// name outside s is ErrImportNotGranted; a granted name with the wrong
// signature is ErrImportSignature. Imported tables, memories and globals
// are never offered.
func (h *Host) gateA(cm *compiledModule, s capSet) error {
	var bad, badSig []string
	for _, imp := range cm.otherImports {
		bad = append(bad, fmt.Sprintf("import %s is not offered: the host links functions only", imp))
	}
	bad = append(bad, importProblems(cm.imports, s)...)
	for i, imp := range cm.imports {
		if !s.allows(imp) {
			continue
		}
		want, ok := h.hostSigs[imp]
		if got := cm.importSigs[i]; ok && !got.Equal(want) {
			badSig = append(badSig, fmt.Sprintf("import %s is declared %s, the host function is %s", imp, got, want))
		}
	}
	switch {
	case len(bad) > 0:
		return detail(ErrImportNotGranted, "%s", joinFirst(append(bad, badSig...)))
	case len(badSig) > 0:
		return detail(ErrImportSignature, "%s", joinFirst(badSig))
	}
	return nil
}

// maxListed bounds the problems one refusal lists, so that a module with
// 100,000 bad imports gets a readable error, not megabytes of one.
const maxListed = 20

func joinFirst(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:maxListed], "; "), len(items)-maxListed)
}

// checkImports is gate A's name check: it names each import outside s
// (the first maxListed of them),
// with the capability that would grant it, or none.
func checkImports(imports []string, s capSet) error {
	bad := importProblems(imports, s)
	if len(bad) == 0 {
		return nil
	}
	return detail(ErrImportNotGranted, "%s", joinFirst(bad))
}

func importProblems(imports []string, s capSet) []string {
	var bad []string
	for _, imp := range imports {
		if s.allows(imp) {
			continue
		}
		if c, ok := importCapability[imp]; ok {
			bad = append(bad, fmt.Sprintf("import %s needs capability %s, not granted", imp, c))
		} else if strings.HasPrefix(imp, extismUserModule+".") {
			bad = append(bad, fmt.Sprintf("import %s is not offered: %s is the embedding application's own module (hyper-mcp's create_message, get_keyring_secret, ...), which this host does not provide", imp, extismUserModule))
		} else if strings.HasPrefix(imp, extismEnvModule+".") {
			bad = append(bad, fmt.Sprintf("import %s is not an %s function this host implements", imp, extismEnvModule))
		} else {
			bad = append(bad, fmt.Sprintf("import %s is not offered by any capability", imp))
		}
	}
	return bad
}
