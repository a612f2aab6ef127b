package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// command is one entry of the CLI's dispatch table: a command that runs,
// or a group of subcommands (tool, trace, audit, secret). Adding a
// subcommand is adding an entry to its group's subs in commandTable.
type command struct {
	name    string
	aliases []string
	// args is the synopsis after the command's name, e.g. "PROGRAM.json".
	args string
	// summary is the one line shown in lists.
	summary string
	// about is the --help text between the usage line and the flags: what
	// the command does and what each positional argument is.
	about string
	// run runs a command; nil for a group.
	run func(cmd *command, args []string, cio *cliIO) error
	// subs are a group's subcommands.
	subs []*command
	// runsTools marks the commands that run programs (serve, run, resume):
	// only they print the no-policy warning, which is about what tools
	// may do when they run.
	runsTools bool
	// logLevel is the default of --log-level; "" means warn.
	logLevel string

	parent *command
}

// root is the dispatch table, built by init from commandTable.
var root *command

func init() {
	root = commandTable()
	var link func(c *command)
	link = func(c *command) {
		for _, s := range c.subs {
			s.parent = c
			link(s)
		}
	}
	link(root)
}

// commandTable is every command, in the order --help lists them.
func commandTable() *command {
	return &command{name: "nano-vm-mcp", subs: []*command{
		{name: "serve", args: "[--transport stdio|http|sse] [--host H] [--port P] [--db FILE]", run: cmdServe, runsTools: true, logLevel: "info",
			summary: "serve MCP over stdio (the default command, for Claude Code and Claude Desktop) or HTTP",
			about: `Serve MCP. Over stdio (the default) every client starts its own process;
processes serving the same database share it through the first one (the
primary). Over HTTP: Streamable HTTP at /mcp, legacy SSE at /sse and
/messages, /health.`},
		{name: "run", args: "PROGRAM.json [--input FILE|JSON] [--idempotency-key K] [--json]", run: cmdRun, runsTools: true,
			summary: "run a program file and print its steps",
			about: `Run a program and print a table of its steps, its final output and its
audit check. Exit status: 0 success (or suspended), 1 failure to run,
2 bad usage, 3 a program that ran but did not succeed.

Arguments:
  PROGRAM.json   the program: a JSON file (see docs/ and examples/)`},
		{name: "resume", args: "TRACE_ID [--payload FILE|JSON] [--source WEBHOOK|OPERATOR|TIMER]", run: cmdResume, runsTools: true,
			summary: "resume a suspended run with an event, or continue an interrupted one",
			about: `Resume a run suspended at a wait step with an event's payload, or continue
a run a crash or shutdown interrupted.

Arguments:
  TRACE_ID   the run's trace id, as run, trace ls and run_program print it`},
		{name: "tool", aliases: []string{"tools"}, summary: "register, list, show and remove tools", subs: []*command{
			{name: "add", args: "DIR | MODULE.wasm [--manifest FILE] [--name N] [--description D] [--capability C]...", run: cmdToolAdd,
				summary: "register a tool from its folder, or from a .wasm file and a manifest or flags",
				about: `Register a tool (or a new version of it) as the operator's.

Arguments:
  DIR           a tool folder: manifest.json and one .wasm file, whatever its
                name ("." is the current folder). Among several .wasm files
                the one named after the tool (NAME.wasm) is taken.
  MODULE.wasm   the module itself. Its manifest is --manifest FILE, else a
                manifest.json beside it, else one made from the flags (the
                name defaulting to the file's name without .wasm).
                The older form "tool add MANIFEST.json MODULE.wasm" still works.

--name, --description and --capability override the manifest's fields.

` + toolNameRule},
			{name: "pull", args: "oci://HOST/REPO:TAG|@sha256:HEX [--manifest FILE | --name N] [--insecure-registry HOST]...", run: cmdToolPull,
				summary: "register a tool from an OCI registry, checking its signature",
				about: `Register the tool an OCI artifact holds as the operator's, from any
registry: our artifacts (tool push), the CNCF Wasm artifact (Wassette's) or
an image with /plugin.wasm (hyper-mcp's). The policy's oci section decides
which signatures are trusted and where one is required; an artifact that
needs one and has none that verifies is refused, saying why. The version
records the artifact by digest and its signer; every step that runs it
carries both into its envelope.

Credentials are the operator's Docker-style config ($DOCKER_CONFIG/
config.json, else ~/.docker/config.json). Plain HTTP only for loopback and
--insecure-registry (or NANO_VM_MCP_INSECURE_REGISTRIES=host,host).

Arguments:
  oci://HOST/REPO:TAG   the artifact, by tag or @sha256:<hex>`},
			{name: "push", args: "MODULE.wasm oci://HOST/REPO:TAG [--manifest FILE] [--sign KEY] [--insecure-registry HOST]...", run: cmdToolPush,
				summary: "publish a tool as a Wasm OCI artifact, optionally signed",
				about: `Publish a module as a CNCF Wasm OCI artifact (config
application/vnd.wasm.config.v0+json, one application/wasm layer) with its
manifest in the annotation dev.nanovm.tool.manifest. With --sign, sign the
artifact's manifest digest with an ECDSA P-256 key (PEM, unencrypted; a
cosign key decrypted) and attach the Sigstore bundle as a referrer
(artifact type application/vnd.dev.sigstore.bundle.v0.3+json), as cosign
does. Opens no database.

Arguments:
  MODULE.wasm           the module; its manifest is --manifest FILE, else a
                        manifest.json beside it, else none
  oci://HOST/REPO:TAG   where to publish it`},
			{name: "new", args: "NAME --lang go|c [--dir DIR] [--sdk GO_SDK_DIR]", run: cmdToolNew,
				summary: "write a working tool skeleton in Go or C that tool add accepts once built",
				about: `Write DIR/NAME/: a tool that greets its "name" argument, with its source,
manifest.json and build.sh. Build it with DIR/NAME/build.sh, then register
it with "nano-vm-mcp tool add DIR/NAME". Opens no database.

Arguments:
  NAME   the new tool's name

` + toolNameRule},
			{name: "ls", run: cmdToolLs, summary: "list the registered tools"},
			{name: "show", args: "NAME", run: cmdToolShow, summary: "print a tool's record as JSON",
				about: "Print a registered tool's record: manifest, module hash, source, grants.\n\nArguments:\n  NAME   the tool's name, as tool ls lists it"},
			{name: "rm", args: "NAME", run: cmdToolRm, summary: "remove a tool (its versions stay in the audit trail)",
				about: "Remove a tool: programs can no longer call it; its versions stay in the\naudit trail.\n\nArguments:\n  NAME   the tool's name, as tool ls lists it"},
		}},
		{name: "trace", aliases: []string{"traces"}, summary: "list runs and show one's steps", subs: []*command{
			{name: "ls", args: "[--status S] [--limit N] [--cursor C] [--json]", run: cmdTraceLs, summary: "list runs, newest first",
				about: "List runs, newest first: trace id, program, status, start time."},
			{name: "show", args: "TRACE_ID [--json] [--status S] [--offset N] [--limit N]", run: cmdTraceShow, summary: "show a run's steps as run prints them (or JSON)",
				about: "Show a run: the table of its steps that run prints, its final output and\nits audit check; --json prints the trace itself.\n\nArguments:\n  TRACE_ID   the run's trace id, as run and trace ls print it"},
		}},
		{name: "audit", summary: "verify the audit chain, sign checkpoints of it, make checkpoint keys", subs: []*command{
			{name: "verify", args: "[--trace TRACE_ID | --checkpoint FILE [--checkpoint-key VERIFIER_KEYS]]", run: cmdAuditVerify,
				summary: "re-hash the envelope chain and the records it covers",
				about:   "Verify the audit chain: every envelope's hash and link, and every stored\nrecord against its envelope. Exit status 1 when anything does not match.\n--execution, the earlier name of --trace, is a deprecated alias for one\nrelease."},
			{name: "checkpoint", args: "[--out FILE] [--checkpoint-signer KEY_FILE]", run: cmdAuditCheckpoint,
				summary: "verify the chain and write its head, signed",
				about:   "Verify the whole chain and write a signed checkpoint of its head to --out\n(atomically) or stdout. An existing --out file is replaced only when the\nchain still extends it."},
			{name: "keygen", args: "NAME [--dir DIR]", run: cmdAuditKeygen, summary: "write a new checkpoint key pair NAME.key and NAME.pub",
				about: "Write a new checkpoint key pair: NAME.key (the signer key, mode 0600) and\nNAME.pub (the verifier key). Never replaces a file.\n\nArguments:\n  NAME   the key's name, written into its checkpoints"},
		}},
		{name: "secret", aliases: []string{"secrets"}, summary: "store, list and erase secrets in the vault", subs: []*command{
			{name: "put", args: "ID", run: cmdSecretPut, summary: "store a secret read from stdin; prints its vault:// ref",
				about: "Store a secret; the value is read from stdin (never a flag, so it stays out\nof shell history and process listings). Prints the ref programs use.\n\nArguments:\n  ID   the secret's id: the ref is vault://secret/ID"},
			{name: "ls", run: cmdSecretLs, summary: "list secrets' refs and states, never their values"},
			{name: "erase", args: "ID", run: cmdSecretErase, summary: "destroy a secret's value; its ref is tombstoned and the erasure audited",
				about: "Destroy a secret's value and tombstone its ref; recorded in the audit chain.\n\nArguments:\n  ID   the secret's id, as secret ls lists it"},
		}},
		{name: "idempotency", summary: "list and clear stored idempotency keys (with the server stopped)", subs: []*command{
			{name: "ls", run: cmdIdempotencyLs, summary: "list stored idempotency keys; a corrupt one shows as CORRUPT"},
			{name: "rm", args: "KEY", run: cmdIdempotencyRm, summary: "clear one idempotency key, e.g. a corrupt one (its run is kept)",
				about: `Clear a stored idempotency key, so the next request with it runs anew: the
way out of a key the server refuses as idempotency_record_corrupt. The run
the key started, if any, is kept. Needs the server stopped.

Arguments:
  KEY   the key, as idempotency ls quotes it`},
		}},
		{name: "ui", args: "[--listen 127.0.0.1:PORT]", run: cmdUI,
			summary: "serve the run viewer on loopback and print its URL (for stdio users; HTTP servers serve it at /ui/)",
			about: `Serve the run viewer in the browser: runs with filters, a run's step
timeline, each step's output, state hash and audit envelope, the audit
chain's status, the tools and the policy. Read-only. It reads the database
as the other commands do: through the server holding it when one runs,
else opening it for each request only. Prints the URL to open; it carries
a fresh token for this process in its #fragment, which the browser never
sends to a server.`},
		{name: "bench", args: "[--scenario S,…] [--items N] [--concurrency C] [--json] [--no-sync]", run: cmdBench,
			summary: "benchmark the runtime on a temporary database",
			about:   "Run the benchmark workloads through the real path on a fresh temporary\ndatabase (never the real one) and print throughput, latency and memory."},
		{name: "version", run: cmdVersion, summary: "print the version"},
		{name: "help", args: "[COMMAND [SUBCOMMAND]]", run: cmdHelp, summary: `print this help, or a command's ("help tool add" is "tool add --help")`},
	}}
}

// toolNameRule is the tool naming rule, for help texts and errors.
const toolNameRule = `A tool's name is how programs call it: a lowercase letter, then up to 63
lowercase letters, digits, '_', '.' or '-' (e.g. word_count, acme.lookup-v2).`

// path is the command's full name, e.g. "nano-vm-mcp tool add".
func (c *command) path() string {
	if c.parent == nil {
		return c.name
	}
	return c.parent.path() + " " + c.name
}

func (c *command) find(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
		for _, a := range s.aliases {
			if a == name {
				return s
			}
		}
	}
	return nil
}

func (c *command) subNames() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// dispatch runs cmd with args: a group picks its subcommand; a usage
// error from a command is tagged with it, for the hint to its --help.
func dispatch(cmd *command, args []string, cio *cliIO) error {
	if cmd.run != nil {
		err := cmd.run(cmd, args, cio)
		var ue usageError
		if errors.As(err, &ue) && ue.cmd == nil {
			ue.cmd = cmd
			return ue
		}
		return err
	}
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelp(args[0])) {
		return usageError{msg: fmt.Sprintf("%s needs a subcommand: %s", strings.TrimPrefix(cmd.path(), root.name+" "), cmd.subNames()), cmd: cmd}
	}
	if isHelp(args[0]) {
		if args[0] == "help" && len(args) > 1 { // help tool add = tool add --help
			return dispatch(cmd, append(append([]string(nil), args[1:]...), "--help"), cio)
		}
		printGroupHelp(cio.stdout, cmd)
		return nil
	}
	sub := cmd.find(args[0])
	if sub == nil {
		return usageError{msg: fmt.Sprintf("unknown subcommand %q of %s; want one of: %s", args[0], cmd.name, cmd.subNames()), cmd: cmd}
	}
	return dispatch(sub, args[1:], cio)
}

// printGroupHelp lists a group's subcommands, one line each; for the
// root it is the program's help.
func printGroupHelp(w io.Writer, g *command) {
	if g.parent == nil {
		fmt.Fprint(w, rootHelpHead)
	} else {
		fmt.Fprintf(w, "usage: %s SUBCOMMAND [ARGUMENTS] [FLAGS]\n\n%s.\n\nSubcommands:\n", g.path(), capitalize(g.summary))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, s := range g.subs {
		line := s.summary
		if s.subs != nil {
			line += " (" + s.subNames() + ")"
		}
		name := s.name
		if g.parent != nil && s.args != "" {
			name += " " + shortArgs(s.args)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, line)
	}
	tw.Flush()
	if g.parent == nil {
		fmt.Fprint(w, rootHelpTail)
		return
	}
	fmt.Fprintf(w, "\nRun \"%s SUBCOMMAND --help\" for its arguments and flags.\n", g.path())
}

// shortArgs is a synopsis without its flags: the positional arguments.
func shortArgs(s string) string {
	var keep []string
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "[") || strings.HasPrefix(f, "--") || (len(keep) > 0 && strings.HasPrefix(keep[len(keep)-1], "[")) {
			break
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

const rootHelpHead = `nano-vm-mcp — a WebAssembly-sandboxed, audited program runtime for MCP clients.

usage: nano-vm-mcp [COMMAND] [ARGUMENTS] [FLAGS]   (no command: serve)

Commands:
`

const rootHelpTail = `
Every command that opens the database takes the shared flags (--db,
--policy, --tools-dir, --env-file, --log-level, the ceilings, …); each flag
has an environment variable, NANO_VM_MCP_<FLAG> (e.g. NANO_VM_MCP_DB).
The database defaults to $XDG_DATA_HOME/nano-vm-mcp/nano_vm_mcp.db, else
~/.local/share/nano-vm-mcp/nano_vm_mcp.db, for every command and transport,
whatever the working folder.

Run "nano-vm-mcp COMMAND --help" for a command's subcommands, arguments and
flags.
`

// cmdHelp is "help [COMMAND [SUBCOMMAND]]"; dispatch answers it before
// it is reached, and it is in the table to be listed.
func cmdHelp(_ *command, args []string, cio *cliIO) error {
	return dispatch(root, append([]string{"help"}, args...), cio)
}

func cmdVersion(cmd *command, args []string, cio *cliIO) error {
	pos, err := parseFlags(cmd, newCommandFlags(cmd), args, nil, cio)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintf(cio.stdout, "nano-vm-mcp %s\n", version)
	return nil
}

// newCommandFlags is a flag set for cmd that prints nothing itself: help
// and errors are printed by parseFlags.
func newCommandFlags(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.path(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs, allowing flags after positional
// arguments. --help prints cmd's help (shared names the shared flags) to
// stdout and returns flag.ErrHelp; a bad flag is a usage error.
func parseFlags(cmd *command, fs *flag.FlagSet, args []string, shared map[string]bool, cio *cliIO) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(cio.stdout, cmd, fs, shared)
				return nil, err
			}
			return nil, usageError{msg: err.Error(), cmd: cmd}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// printCommandHelp prints a command's usage, its text, its own flags and
// then the shared ones.
func printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet, shared map[string]bool) {
	fmt.Fprintf(w, "usage: %s %s\n\n", cmd.path(), cmd.args)
	if cmd.about != "" {
		fmt.Fprintf(w, "%s\n", cmd.about)
	} else {
		fmt.Fprintf(w, "%s.\n", capitalize(cmd.summary))
	}
	var own, common []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if shared[f.Name] {
			common = append(common, f)
		} else {
			own = append(own, f)
		}
	})
	printFlagList(w, "\nFlags:\n", own)
	printFlagList(w, "\nShared flags (each also NANO_VM_MCP_<FLAG> in the environment, as named):\n", common)
}

func printFlagList(w io.Writer, title string, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	fmt.Fprint(w, title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		switch name {
		case "string", "value":
			name = "VALUE"
		case "int", "uint":
			name = "N"
		}
		if name != "" {
			name = " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  --%s%s\t%s%s\n", f.Name, name, usage, def)
	}
	tw.Flush()
}
