package tools

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// Store is the persistence the registry needs; *store.DB implements it with
// bbolt and NewMemoryStore in memory.
type Store interface {
	// PutToolVersion stores module bytes by hash (once), records the
	// version and makes it current for rec.Name.
	PutToolVersion(ctx context.Context, rec toolrecord.Record, module []byte) error
	// Tool returns the current version; toolrecord.ErrNotFound if none.
	Tool(ctx context.Context, name string) (toolrecord.Record, error)
	// ToolVersion returns one version; toolrecord.ErrNotFound if none.
	ToolVersion(ctx context.Context, name, moduleSHA256 string) (toolrecord.Record, error)
	// Module returns module bytes; toolrecord.ErrNotFound if none.
	Module(ctx context.Context, moduleSHA256 string) ([]byte, error)
	// Tools returns the current versions, sorted by name.
	Tools(ctx context.Context) ([]toolrecord.Record, error)
	// RemoveTool unregisters name; versions and modules stay for the
	// audit trail; toolrecord.ErrNotFound if none.
	RemoveTool(ctx context.Context, name string) error
	// UploadedBytes is what uploads store: every version record from an
	// upload (removed names included) and the distinct modules they run.
	UploadedBytes(ctx context.Context) (uint64, error)
}

// RegistryOptions configures a Registry. The zero value grants as
// DefaultGrant does (an operator tool what its manifest asks, an upload
// DefaultUploadCapabilities) and stamps records with time.Now.
type RegistryOptions struct {
	// Grants is gate C. nil means DefaultGrant. When it is FrozenGrants
	// (as DefaultGrant is), the registry asks it once per version and
	// keeps the Tool built from the answer.
	Grants Grants
	// Now stamps RegisteredAt; nil means time.Now.
	Now func() time.Time
}

// Registry registers tools (gate A), resolves names and pinned versions to
// ready-to-call Tools, and keeps compiled code and warm pools per version.
// It is safe for concurrent use.
type Registry struct {
	host *Host
	st   Store
	opts RegistryOptions

	// regMu serialises the last check and the write of a registration, so
	// that an upload cannot slip in over a tool the operator registers at
	// the same moment.
	regMu sync.Mutex

	// frozen is set when gate C answers every request as it did the first
	// time (FrozenGrants): a version's Tool is then built once and kept in
	// version.tool.
	frozen bool

	mu       sync.Mutex
	versions map[versionKey]*version
	// current caches each name's current version so that a call does not
	// read the store. Register and Remove through this registry keep it
	// true; the store has one writer process (the primary), which owns it.
	current map[string]toolrecord.Record

	// uploaded is what uploads store (Store.UploadedBytes), read from the
	// store at the first upload and kept under regMu; -1 until read.
	uploaded int64
	// pending is what uploads between their check and their write (while
	// they compile) may add, held so that concurrent uploads cannot all
	// pass the check together; under regMu.
	pending int64
}

// versionKey names one version of a tool: its module, manifest and
// source, and the artifact and signer it came from (the same bytes from
// an artifact, or signed by someone else, are another version, whose Tool
// carries that provenance). A struct, so a lookup builds no string.
type versionKey struct {
	module, manifest string
	source           toolrecord.Source
	// prov says the version has a provenance, of origin, ref and signer:
	// everything in it gate C reads.
	prov                bool
	origin, ref, signer string
}

// keyOf is rec's versionKey, rec.Source read as EffectiveSource.
func keyOf(rec *toolrecord.Record) versionKey {
	k := versionKey{module: rec.ModuleSHA256, manifest: rec.ManifestSHA256, source: rec.EffectiveSource()}
	if p := rec.Provenance; p != nil {
		k.prov, k.origin, k.ref, k.signer = true, p.Origin, p.Ref, p.SignerID
	}
	return k
}

// version caches one decoded manifest and its Tools per effective set.
type version struct {
	manifest Manifest
	byCaps   map[string]*Tool
	// tool, under frozen grants, is the Tool gate C's one answer for this
	// version builds, once built; under r.mu.
	tool *Tool
}

// NewRegistry returns a registry over st running tools on h.
func NewRegistry(h *Host, st Store, opts RegistryOptions) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	frozen := opts.Grants == nil
	if f, ok := opts.Grants.(FrozenGrants); ok {
		frozen = f.GrantsFrozen()
	}
	return &Registry{host: h, st: st, opts: opts, frozen: frozen, versions: map[versionKey]*version{}, current: map[string]toolrecord.Record{}, uploaded: -1}
}

// grant asks gate C about one version.
func (r *Registry) grant(req GrantRequest) (Grant, error) {
	if r.opts.Grants == nil {
		return DefaultGrant(req), nil
	}
	g, err := r.opts.Grants.Grant(req)
	if err != nil {
		return Grant{}, fmt.Errorf("%w: %w", ErrCapabilityDenied, err)
	}
	if g.Capabilities == nil {
		g.Capabilities = map[string]string{}
	}
	return g, nil
}

// Register is RegisterAs for the operator (toolrecord.SourceOperator).
func (r *Registry) Register(ctx context.Context, m Manifest, wasm []byte) (toolrecord.Record, error) {
	return r.RegisterAs(ctx, toolrecord.SourceOperator, m, wasm)
}

// RegisterAs validates m, asks gate C what src may have, compiles wasm,
// checks its imports against the capabilities granted (gate A) and stores
// the version, which becomes the current one for m.Name.
//
// An upload (toolrecord.SourceUpload) must ask for no more than its grant: a
// capability, allowed host or mount outside it is refused, naming the
// field. It may not replace a tool whose current version is bundled or the
// operator's unless its grant says MayReplaceOperator (ErrOperatorTool).
func (r *Registry) RegisterAs(ctx context.Context, src toolrecord.Source, m Manifest, wasm []byte) (toolrecord.Record, error) {
	return r.RegisterFrom(ctx, src, nil, m, wasm)
}

// RegisterFrom is RegisterAs for a module whose provenance (an OCI
// artifact and its verified signer) the version record keeps and gate C
// is told.
func (r *Registry) RegisterFrom(ctx context.Context, src toolrecord.Source, prov *toolrecord.Provenance, m Manifest, wasm []byte) (toolrecord.Record, error) {
	if err := m.Validate(); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	if !src.Valid() {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: unknown source %q", m.Name, src)
	}
	if err := r.host.opts.Ceilings.check(&m); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	g, err := r.grant(GrantRequest{Name: m.Name, ModuleSHA256: sha256Hex(wasm), Source: src, Manifest: &m, Provenance: prov})
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	// Refuse a takeover before paying for a compile; checked again under
	// regMu just before the write.
	if err := r.mayReplace(ctx, src, &m, sha256Hex(wasm), &g); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	if err := g.within(&m); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	held, err := r.uploadFits(ctx, src, &m, wasm)
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	defer func() {
		r.regMu.Lock()
		r.pending -= held
		r.regMu.Unlock()
	}()
	granted, auth := g.effective(&m)
	// Read, check and admit before compiling: a refused module is never
	// compiled and leaves nothing behind. A bundled module (bytes this
	// binary embeds, built by wasm-tools/build.sh) is only read and
	// admitted: it compiles at its first call, from the disk cache when
	// one is warm, so a first start does not pay for every bundled tool
	// (jq alone is 6.5 MB). See .rationale/sandbox.md.
	admit := func(cm *compiledModule) error { return r.admit(&m, cm, granted) }
	var cm *compiledModule
	if src == toolrecord.SourceBundled {
		cm, err = r.host.check(wasm, admit)
	} else {
		cm, err = r.host.load(ctx, wasm, admit)
	}
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	canon, sum, err := m.canonical()
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	rec := toolrecord.Record{
		Name:           m.Name,
		ModuleSHA256:   cm.sha256,
		ManifestSHA256: sum,
		Manifest:       canon,
		RegisteredAt:   r.opts.Now().UTC(),
		Source:         src,
		Grants:         auth,
		Provenance:     prov,
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.mayReplace(ctx, src, &m, rec.ModuleSHA256, &g); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	add, err := r.uploadFitsLocked(ctx, src, &m, wasm, held)
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	if err := r.st.PutToolVersion(ctx, rec, wasm); err != nil {
		return toolrecord.Record{}, fmt.Errorf("register tool %q: %w", m.Name, err)
	}
	r.uploaded += add
	r.mu.Lock()
	r.current[m.Name] = rec
	r.mu.Unlock()
	return rec, nil
}

// uploadFits refuses an upload that would take what uploads store, and
// what uploads being compiled may add, past Ceilings.UploadBytes, before
// anything is compiled; checked again under regMu just before the write.
// It returns what the upload adds (its version record and, unless the
// store holds them already, its module's bytes), now held in pending: the
// caller releases it when the registration ends.
func (r *Registry) uploadFits(ctx context.Context, src toolrecord.Source, m *Manifest, wasm []byte) (int64, error) {
	if src != toolrecord.SourceUpload {
		return 0, nil
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	add, err := r.uploadFitsLocked(ctx, src, m, wasm, 0)
	if err == nil {
		r.pending += add
	}
	return add, err
}

// uploadRecordBytes is what a version record holds beside its manifest
// (hashes, name, source, grants, time), counted generously.
const uploadRecordBytes = 1024

// uploadFitsLocked is uploadFits's check, for an upload that holds own of
// pending already.
func (r *Registry) uploadFitsLocked(ctx context.Context, src toolrecord.Source, m *Manifest, wasm []byte, own int64) (int64, error) {
	if src != toolrecord.SourceUpload {
		return 0, nil
	}
	if r.uploaded < 0 {
		n, err := r.st.UploadedBytes(ctx)
		if err != nil {
			return 0, err
		}
		r.uploaded = int64(n)
	}
	canon, _, err := m.canonical()
	if err != nil {
		return 0, err
	}
	add := int64(len(canon) + len(m.Name) + uploadRecordBytes)
	if _, err := r.st.Module(ctx, sha256Hex(wasm)); err != nil {
		add += int64(len(wasm)) // new bytes; a stored module costs nothing more
	}
	ceiling := int64(r.host.opts.Ceilings.UploadBytes)
	total := r.uploaded + r.pending - own + add
	if total <= ceiling {
		return add, nil
	}
	inFlight := ""
	if r.pending > own {
		inFlight = fmt.Sprintf(", %d of them by uploads being registered now", r.pending-own)
	}
	return 0, detail(ErrAboveCeiling,
		"uploaded tools would store %d bytes (modules and manifests) with this one%s, above the server's ceiling of %d bytes (--max-upload-bytes); uploads are kept for the audit, so add large or many tools through the tools folder",
		total, inFlight, ceiling)
}

// mayReplace refuses an upload over a name whose current version is
// bundled or the operator's, or over a stored version of the same name
// and module that is (a pinned ref names it for good), unless the grant
// allows it.
func (r *Registry) mayReplace(ctx context.Context, src toolrecord.Source, m *Manifest, sha string, g *Grant) error {
	if src.Trusted() || g.MayReplaceOperator {
		return nil
	}
	cur, err := r.st.Tool(ctx, m.Name)
	switch {
	case errors.Is(err, toolrecord.ErrNotFound):
	case err != nil:
		return err
	case cur.EffectiveSource().Trusted():
		s := cur.EffectiveSource()
		return fmt.Errorf("%w: %w", ErrCapabilityDenied, detail(ErrOperatorTool,
			"%q is %s tool: an upload may not replace it unless the policy allows uploads for that name (uploads.tools.%s.replace_operator)", m.Name, SourcePhrase(s), m.Name))
	}
	old, err := r.st.ToolVersion(ctx, m.Name, sha)
	switch {
	case errors.Is(err, toolrecord.ErrNotFound):
	case err != nil:
		return err
	case old.EffectiveSource().Trusted():
		return fmt.Errorf("%w: %w", ErrCapabilityDenied, detail(ErrOperatorTool,
			"%s@sha256:%s is %s version: an upload may not rewrite it (pinned refs run it as registered); upload under another name", m.Name, sha, SourcePhrase(old.EffectiveSource())))
	}
	return nil
}

// SourcePhrase is "a bundled", "an operator" or "an uploaded", for messages.
func SourcePhrase(s toolrecord.Source) string {
	switch s {
	case toolrecord.SourceBundled:
		return "a bundled"
	case toolrecord.SourceOperator:
		return "an operator"
	default:
		return "an uploaded"
	}
}

// Source returns who registered the current version of name.
func (r *Registry) Source(ctx context.Context, name string) (toolrecord.Source, error) {
	r.mu.Lock()
	cur, ok := r.current[name]
	r.mu.Unlock()
	if ok {
		return cur.EffectiveSource(), nil
	}
	rec, err := r.st.Tool(ctx, name)
	if err != nil {
		return "", fmt.Errorf("tool %q: %w", name, err)
	}
	return rec.EffectiveSource(), nil
}

// ManifestSHA256 returns the SHA-256 of m's canonical JSON, as a version
// record's ManifestSHA256 has it.
func ManifestSHA256(m *Manifest) (string, error) {
	_, sum, err := m.canonical()
	return sum, err
}

// admit is gate A plus the checks of the module against its manifest,
// all made on the structural read, before anything is compiled.
func (r *Registry) admit(m *Manifest, cm *compiledModule, granted []string) error {
	if err := r.host.gateA(cm, newCapSet(granted)); err != nil {
		return err
	}
	if err := r.host.checkMounts(m); err != nil {
		return err
	}
	limit := r.host.opts.Ceilings.effective(m).memory
	memStart := uint64(cm.minPages) << 16
	if cm.tableBytes == cm.extraBytes && memStart > limit {
		return detail(ErrMemoryLimit, "module needs %d KiB of memory at start, memory limit is %s", memStart>>10, mib(limit))
	}
	if memStart+cm.tableBytes > limit {
		what := "its tables"
		if cm.extraBytes > 0 {
			what = "its tables, segments and globals"
		}
		return detail(ErrMemoryLimit, "module needs %d KiB of memory at start and up to %d KiB for %s (%s), memory limit is %s",
			memStart>>10, cm.tableBytes>>10, what, strings.Join(cm.tables, "; "), mib(limit))
	}
	if m.Isolation == IsolationPool && !cm.hasCall {
		return fmt.Errorf("%w: isolation %q needs the module to export nanovm_call", ErrInvalidManifest, IsolationPool)
	}
	return nil
}

// Get returns the current version of name.
func (r *Registry) Get(ctx context.Context, name string) (toolrecord.Record, error) {
	rec, err := r.st.Tool(ctx, name)
	if err != nil {
		return toolrecord.Record{}, fmt.Errorf("get tool %q: %w", name, err)
	}
	rec.Source = rec.EffectiveSource()
	return rec, nil
}

// List returns the current version of every tool, sorted by name.
func (r *Registry) List(ctx context.Context) ([]toolrecord.Record, error) {
	recs, err := r.st.Tools(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	for i := range recs {
		recs[i].Source = recs[i].EffectiveSource()
	}
	return recs, nil
}

// ForgetCurrent drops the cached current version of every name, so the
// next call reads the store: on a store replicas share, another replica
// registered or removed a tool. Compiled code stays cached, by version.
func (r *Registry) ForgetCurrent() {
	r.mu.Lock()
	clear(r.current)
	r.mu.Unlock()
}

// Remove unregisters name. Its versions stay resolvable by pinned hash so
// past runs can still name (and replay) the code they ran.
func (r *Registry) Remove(ctx context.Context, name string) error {
	r.mu.Lock()
	delete(r.current, name)
	r.mu.Unlock()
	if err := r.st.RemoveTool(ctx, name); err != nil {
		return fmt.Errorf("remove tool %q: %w", name, err)
	}
	return nil
}

var pinRE = regexp.MustCompile(`^([^@]+)@sha256:([0-9a-f]{64})$`)

// ParseRef splits "name" or "name@sha256:<hex>" into name and module hash
// ("" when not pinned).
func ParseRef(ref string) (name, moduleSHA256 string, err error) {
	if !strings.Contains(ref, "@") {
		return ref, "", nil
	}
	m := pinRE.FindStringSubmatch(ref)
	if m == nil {
		return "", "", fmt.Errorf("parse tool ref %q: want name or name@sha256:<64 lowercase hex>", ref)
	}
	return m[1], m[2], nil
}

// Resolve returns the Tool a program's "tool" field names: the current
// version of "name", or exactly the module "name@sha256:<hex>" pins. Gate C
// is asked again on every resolve, so a policy change applies to the next
// call, unless it is FrozenGrants: its one answer per version stands, and
// the Tool built from it is returned again. Gate A is re-checked against
// the effective set.
func (r *Registry) Resolve(ctx context.Context, ref string) (*Tool, error) {
	name, pin, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var rec toolrecord.Record
	if pin == "" {
		r.mu.Lock()
		cur, ok := r.current[name]
		var t *Tool
		if ok && r.frozen {
			if v := r.versions[keyOf(&cur)]; v != nil {
				t = v.tool
			}
		}
		r.mu.Unlock()
		if t != nil {
			return t, nil
		}
		if ok {
			rec = cur
		} else if rec, err = r.st.Tool(ctx, name); err == nil {
			r.mu.Lock()
			r.current[name] = rec
			r.mu.Unlock()
		}
	} else {
		rec, err = r.st.ToolVersion(ctx, name, pin)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	rec.Source = rec.EffectiveSource()
	vkey := keyOf(&rec)
	r.mu.Lock()
	v, ok := r.versions[vkey]
	var t *Tool
	if ok && r.frozen {
		t = v.tool
	}
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	if !ok {
		m, err := ParseManifest(rec.Manifest)
		if err != nil {
			return nil, fmt.Errorf("resolve tool %q: stored manifest: %w", ref, err)
		}
		v = &version{manifest: m, byCaps: map[string]*Tool{}}
		r.mu.Lock()
		if prev, ok := r.versions[vkey]; ok {
			v = prev
		} else {
			r.versions[vkey] = v
		}
		r.mu.Unlock()
	}
	g, err := r.grant(GrantRequest{Name: rec.Name, ModuleSHA256: rec.ModuleSHA256, Source: rec.Source, Manifest: &v.manifest, Provenance: rec.Provenance})
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	// The policy may have changed since registration: an upload whose
	// manifest now reaches past its grant does not run.
	if err := g.within(&v.manifest); err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	// The effective grant's key, in a buffer on the stack: a call of a
	// Tool already built allocates nothing to find it.
	var kb [256]byte
	key := grantKey(kb[:0], &g, &v.manifest)
	r.mu.Lock()
	t, ok = v.byCaps[string(key)]
	if ok && r.frozen {
		v.tool = t
	}
	r.mu.Unlock()
	if ok {
		return t, nil
	}
	ckey := string(key)
	granted, auth := g.effective(&v.manifest)
	secrets := slices.Clone(g.Secrets)
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)
	t, err = r.build(ctx, rec, v.manifest, granted)
	if err != nil {
		return nil, fmt.Errorf("resolve tool %q: %w", ref, err)
	}
	t.Source, t.Authority, t.secretGrant = rec.Source, auth, secrets
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := v.byCaps[ckey]; ok {
		t = prev
	} else {
		v.byCaps[ckey] = t
	}
	if r.frozen {
		v.tool = t
	}
	return t, nil
}

// grantKey appends the key a Tool is cached under for grant g of manifest
// m: the capabilities m asks for that g holds, sorted, each with its
// authority ("c=a,…"), then "|" and g's secrets, sorted, each once
// ("s,…"). Two grants with the same key build the same Tool. The sorting
// is done in place on small arrays, so a key of a few capabilities and
// secrets costs no allocation.
func grantKey(dst []byte, g *Grant, m *Manifest) []byte {
	var ca [8]string
	caps := ca[:0]
	for _, c := range m.Capabilities {
		if _, ok := g.Capabilities[c]; ok {
			caps = append(caps, c)
		}
	}
	slices.Sort(caps)
	for i, c := range slices.Compact(caps) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c...)
		dst = append(dst, '=')
		dst = append(dst, g.Capabilities[c]...)
	}
	dst = append(dst, '|')
	var sa [8]string
	secrets := append(sa[:0], g.Secrets...)
	slices.Sort(secrets)
	for i, s := range slices.Compact(secrets) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s...)
	}
	return dst
}

func (r *Registry) build(ctx context.Context, rec toolrecord.Record, m Manifest, granted []string) (*Tool, error) {
	wasm, err := r.st.Module(ctx, rec.ModuleSHA256)
	if err != nil {
		return nil, fmt.Errorf("load module: %w", err)
	}
	if got := sha256Hex(wasm); got != rec.ModuleSHA256 {
		return nil, fmt.Errorf("load module: stored bytes hash to %s, not %s", got, rec.ModuleSHA256)
	}
	cm, err := r.host.load(ctx, wasm, func(cm *compiledModule) error { return r.admit(&m, cm, granted) })
	if err != nil {
		return nil, err
	}
	return r.host.prepare(ctx, rec, m, cm, granted)
}

// Call resolves ref and calls it.
func (r *Registry) Call(ctx context.Context, ref string, req CallRequest) (CallResult, error) {
	t, err := r.Resolve(ctx, ref)
	if err != nil {
		return CallResult{}, err
	}
	return t.Call(ctx, req)
}

// Warm resolves every current tool, compiling each (from the disk cache
// when one is configured) so the first call pays nothing. It returns the
// errors of the tools that failed, joined; the others stay usable.
func (r *Registry) Warm(ctx context.Context) error {
	recs, err := r.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range recs {
		if _, err := r.Resolve(ctx, rec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
