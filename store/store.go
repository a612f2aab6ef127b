package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Store is everything the runtime asks of durable storage. *DB (bbolt)
// implements it; the interface is kept to records and atomic operations
// on them so that a PostgreSQL backend can implement it with ordinary
// tables, transactions and a sequence. Package storetest holds the
// conformance suite every implementation must pass.
//
// Every method takes a context first. Writes return only once the change is
// durable (or, with Options.NoSync, written to the operating system).
type Store interface {
	ProgramStore
	RunStore
	AuditStore
	IdempotencyStore
	SecretStore
	ToolStore
	// Close releases the store. Further calls return ErrClosed.
	Close() error
}

// ProgramStore keeps saved programs.
type ProgramStore interface {
	// PutProgram creates or replaces a program. A zero CreatedAt is set to
	// now on creation and kept from the stored record on replacement.
	PutProgram(ctx context.Context, p Program) (Program, error)
	// Program returns a program by id, or ErrNotFound.
	Program(ctx context.Context, id string) (Program, error)
	// Programs lists programs newest first; limit <= 0 means all.
	Programs(ctx context.Context, limit int) ([]Program, error)
	// DeleteProgram removes a program with its runs, their steps and
	// their idempotency keys. Envelopes are never deleted; an envelope of
	// kind EnvelopeKindDelete records each run's deletion, so
	// VerifyChain expects its records gone. ErrNotFound when the program
	// does not exist.
	DeleteProgram(ctx context.Context, id string) error
}

// RunStore keeps runs (traces) and their steps.
type RunStore interface {
	// PutRun creates or replaces a run's record (start,
	// finish, suspend). Input and Program left empty keep their
	// stored values, so a later update need not resend them. A zero CreatedAt is set to now on creation and kept
	// from the stored record on replacement; UpdatedAt is always now.
	// Input and Program are stored verbatim: Run and RunTrace
	// return them byte for byte as put. A replacement appends an envelope
	// of kind EnvelopeKindRun committing to the record as written
	// and to the stored input and program.
	PutRun(ctx context.Context, e Run) (Run, error)
	// Run returns a run by id, or ErrNotFound.
	Run(ctx context.Context, id string) (Run, error)
	// Runs lists runs newest first, filtered and paged,
	// without their Input and Program (read one with Run).
	Runs(ctx context.Context, f RunFilter) (RunPage, error)
	// Unfinished lists runs whose status is kernel.StatusRunning or
	// kernel.StatusSuspended, oldest first: after a crash these are the runs to
	// resume or to offer for resumption.
	Unfinished(ctx context.Context) ([]Run, error)
	// CommitStep atomically writes a step, replaces its run's record
	// (empty Input and Program keep their stored values)
	// and, when c.Envelope is set, appends the envelope to the audit chain.
	// It returns the stored envelope (nil without a draft). The store sets
	// the envelope's RecordSHA256 to the hash of c.Step and, unless
	// KeepRun, its RunSHA256 to the hash of the run
	// record it wrote; a step committed without an envelope is a record
	// VerifyChain reports as not covered. ErrStepExists when the step
	// index is taken; nothing is written then.
	CommitStep(ctx context.Context, c StepCommit) (*Envelope, error)
	// StartCommitStep is CommitStep without the wait: it validates and
	// queues c and returns at once; the PendingCommit reports the outcome.
	// Commits are applied in the order they were started, and a step whose
	// predecessor (index-1) is missing is refused with ErrStepGap, so a
	// run's durable steps are always a prefix of those started: a run
	// may go on while earlier steps are being made durable.
	StartCommitStep(ctx context.Context, c StepCommit) *PendingCommit
	// Steps returns up to limit steps of a run with index >= offset,
	// in index order; limit <= 0 means all.
	Steps(ctx context.Context, traceID string, offset, limit int) ([]Step, error)
	// RunTrace returns a run, as Run does, with all its
	// steps in index order, read together so that they are consistent
	// with each other. ErrNotFound when the run does not exist.
	RunTrace(ctx context.Context, id string) (Run, []Step, error)
}

// RunRecordStore is a RunStore that tells a caller the run record PutRun
// stored (a bbolt file's DB): a run's first step commit can then have its
// envelope commit to that record (StepCommit.RunRecord) instead of
// rewriting it.
type RunRecordStore interface {
	// PutRunStored is PutRun, also returning the run record as stored.
	PutRunStored(ctx context.Context, e Run) (Run, StoredRun, error)
}

// StoredRun is a run record as PutRunStored stored it: its bytes and the
// status they hold, as the store wrote them (a caller cannot make one up,
// so an envelope's RunStatus is always the record's own).
type StoredRun struct {
	v      []byte
	status kernel.Status
}

// Bytes returns the record's stored bytes (the caller must not modify
// them); nil for the zero StoredRun.
func (s StoredRun) Bytes() []byte { return s.v }

// AuditStore keeps the global append-only envelope chain.
type AuditStore interface {
	// AppendEnvelope appends an envelope that belongs to no step (an
	// erasure, for example), assigning Seq, RecordedAt, PrevHash and Hash.
	AppendEnvelope(ctx context.Context, draft Envelope) (Envelope, error)
	// Envelope returns the envelope with sequence number seq, or
	// ErrNotFound.
	Envelope(ctx context.Context, seq uint64) (Envelope, error)
	// Envelopes returns a run's envelopes in seq order.
	Envelopes(ctx context.Context, traceID string) ([]Envelope, error)
	// Head returns the sequence number and hash of the last envelope
	// appended (0 and GenesisHash for an empty chain), as recorded, without
	// verifying the chain: cheap enough to poll. Signed checkpoints are
	// taken from it.
	Head(ctx context.Context) (seq uint64, hash string, err error)
	// VerifyChain re-checks the chain (the whole chain when traceID is
	// empty, otherwise that run's envelopes and their links into the
	// chain) and reports the first broken link; then it re-hashes every
	// stored record of those runs (steps, run records, inputs,
	// programs) against the latest envelope committing to it and reports
	// each that is changed, missing or covered by none. An error means the
	// check could not run, not that the chain is broken.
	VerifyChain(ctx context.Context, traceID string) (VerifyReport, error)
}

// IdempotencyStore keeps idempotency keys.
type IdempotencyStore interface {
	// ClaimIdempotencyKey claims key for a request. When the key is absent
	// or expired it records {requestHash, traceID} with status
	// IdempotencyPending, expiring after ttl (DefaultIdempotencyTTL when
	// ttl <= 0), and returns it with claimed true. When the key is live with
	// the same requestHash it returns the stored record with claimed false.
	// A live key with another requestHash is ErrIdempotencyConflict.
	ClaimIdempotencyKey(ctx context.Context, key, requestHash, traceID string, ttl time.Duration) (rec IdempotencyRecord, claimed bool, err error)
	// IdempotencyKey returns a live key's record, or ErrNotFound when it is
	// absent or expired.
	IdempotencyKey(ctx context.Context, key string) (IdempotencyRecord, error)
	// FinishIdempotencyKey records the terminal status of the key's run.
	// ErrNotFound when the key is absent.
	FinishIdempotencyKey(ctx context.Context, key, status string) error
	// PurgeExpired deletes expired keys and returns how many it deleted.
	PurgeExpired(ctx context.Context) (int, error)
}

// SecretStore keeps encrypted secrets. It never sees a plaintext value:
// Vault encrypts before calling it.
type SecretStore interface {
	// PutSecret stores a secret record. ErrTombstoned when the id was
	// erased: an erased id is never reused.
	PutSecret(ctx context.Context, rec SecretRecord) error
	// Secret returns a secret record (tombstones included), or ErrNotFound.
	Secret(ctx context.Context, id string) (SecretRecord, error)
	// Secrets lists every secret record without its nonce and ciphertext,
	// sorted by id.
	Secrets(ctx context.Context) ([]SecretRecord, error)
	// EraseSecret deletes the nonce and ciphertext and keeps a tombstone
	// with the salt. ErrNotFound for an unknown id; erasing a tombstone
	// again is a no-op.
	EraseSecret(ctx context.Context, id string) (SecretRecord, error)
}

// ToolStore keeps registered tools and their module bytes.
type ToolStore interface {
	// PutToolVersion stores module bytes under their SHA-256 (once),
	// records the version and makes it the current one for rec.Name.
	PutToolVersion(ctx context.Context, rec ToolRecord, module []byte) error
	// Tool returns the current version of a tool, or ErrNotFound.
	Tool(ctx context.Context, name string) (ToolRecord, error)
	// ToolVersion returns a specific version of a tool, or ErrNotFound.
	ToolVersion(ctx context.Context, name, moduleSHA256 string) (ToolRecord, error)
	// Module returns module bytes by SHA-256, or ErrNotFound.
	Module(ctx context.Context, moduleSHA256 string) ([]byte, error)
	// Tools returns the current version of every tool, sorted by name.
	Tools(ctx context.Context) ([]ToolRecord, error)
	// RemoveTool unregisters a name. Its versions and module bytes stay for
	// the audit trail. ErrNotFound when the name is not registered.
	RemoveTool(ctx context.Context, name string) error
}

// Program is a saved program.
type Program struct {
	// ID is the program's id, chosen by the caller.
	ID string `json:"id"`
	// Name is the program's name.
	Name string `json:"name"`
	// Hash is the canonical hash of Program.
	Hash string `json:"hash"`
	// CreatedAt is when the program was first saved.
	CreatedAt time.Time `json:"created_at"`
	// Program is the program as JSON; package kernel defines it.
	Program json.RawMessage `json:"program"`
}

// Run is the run record: one run of a program, with the trace header and
// everything needed to resume it. It is stored in the bucket "executions"
// under its JSON names, which verification hashes; the Go names say run.
type Run struct {
	// ID is the trace id.
	ID string `json:"id"`
	// ProgramID is the saved program's id, or empty for an unsaved
	// program.
	ProgramID string `json:"program_id,omitempty"`
	// ProgramHash is the canonical hash of Program.
	ProgramHash string `json:"program_hash"`
	// ProgramName is the program's name.
	ProgramName string `json:"program_name"`
	// Status is the run's status; kernel.StatusRunning and
	// kernel.StatusSuspended are listed by Unfinished. The store
	// interprets no other status.
	Status kernel.Status `json:"status"`
	// PolicyHash is the hash of the policy snapshot the run started under.
	PolicyHash string `json:"policy_hash"`
	// IdempotencyKey is the key the run was started with, if any.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Input is the run's input as JSON.
	Input json.RawMessage `json:"input,omitempty"`
	// Program is the program as run, so a run can resume even if the saved
	// program changed or was never saved.
	Program json.RawMessage `json:"program,omitempty"`
	// Header is the trace header (everything but the steps), opaque to the
	// store.
	Header json.RawMessage `json:"header,omitempty"`
	// CreatedAt is when the run was first stored.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when the run was last stored.
	UpdatedAt time.Time `json:"updated_at"`
}

// RunFilter selects runs. The zero value lists the newest
// DefaultPageLimit runs.
type RunFilter struct {
	// ProgramID keeps only runs of that program; empty keeps all.
	ProgramID string
	// Status keeps only runs with that status; empty keeps all.
	Status kernel.Status
	// Limit caps the page size; <= 0 means DefaultPageLimit, and it is
	// clamped to MaxPageLimit.
	Limit int
	// Cursor continues after a previous page's NextCursor; empty starts
	// with the newest.
	Cursor string
}

// Page limits for Runs.
const (
	// DefaultPageLimit is the page size when RunFilter.Limit <= 0.
	DefaultPageLimit = 50
	// MaxPageLimit is the largest page Runs returns.
	MaxPageLimit = 1000
)

// RunPage is one page of runs.
type RunPage struct {
	// Runs are newest first. The JSON name keeps the older word: trace ls
	// --json prints it, and processes of different releases exchange it
	// on the database's socket.
	Runs []Run `json:"executions"`
	// NextCursor continues the listing; empty when there is no more.
	NextCursor string `json:"next_cursor,omitempty"`
	// Skipped are the records in this page's range that could not be
	// decoded (written by an older release, or damaged), newest first:
	// the listing goes on past them. They count toward the page's limit.
	Skipped []SkippedRecord `json:"skipped,omitempty"`
}

// SkippedRecord is a stored record a listing could not decode.
type SkippedRecord struct {
	// ID is the record's key: an trace id.
	ID string `json:"id"`
	// Error says why it could not be decoded.
	Error string `json:"error"`
}

// Step is one stored step of a run.
type Step struct {
	// Index is the step's position in the trace, from 0.
	Index int `json:"index"`
	// Data is the step as JSON; package kernel defines it.
	Data json.RawMessage `json:"data"`
}

// StepCommit is everything one step makes durable, written in one
// transaction by CommitStep.
type StepCommit struct {
	// Run replaces the stored run record (status, checkpoint,
	// header) in the same transaction.
	Run Run
	// KeepRun leaves the stored run record as it is (it must
	// exist; Run.ID names it): a step that changes neither the run's
	// status nor anything a reader needs from the record need not rewrite
	// it.
	KeepRun bool
	// RunRecord, with KeepRun, is the run record as PutRunStored stored
	// it: the envelope then commits to it (RunSHA256, and its status as
	// RunStatus) without the record being rewritten. Inside the transaction the store compares
	// them with the stored record; if another write changed it since, the
	// envelope commits to the record as it is instead. Only a store that
	// implements RunRecordStore honours it (the others ignore it, and
	// their callers have no bytes to give).
	RunRecord StoredRun
	// Index is the step's index; it must be free.
	Index int
	// Step is the step as JSON.
	Step json.RawMessage
	// Envelope, when set, is appended to the audit chain. Its TraceID
	// and StepIndex default to Run.ID and Index and must match them
	// when set; Kind defaults to EnvelopeKindStep. Seq, RecordedAt,
	// PrevHash and Hash are assigned by the store, which copies the
	// draft before CommitStep or StartCommitStep returns (the caller may
	// reuse it, its payload's bytes too). A payload already canonical is
	// stored as given.
	Envelope *Envelope
	// Lease, when set, fences the commit on a store shared by replicas
	// (LeaseStore): it is written only while l is still the execution's
	// lease, in the same transaction, else ErrLeaseLost and nothing is
	// written; a fenced commit that records the run's end does more (see
	// RunEnd). A store of one process (bbolt) ignores it.
	Lease *Lease
}

// PendingCommit is a step commit on its way to durability.
type PendingCommit struct {
	done chan struct{}
	env  *Envelope
	err  error
}

// NewPendingCommit returns a pending commit and the function that
// completes it; a Store implementation calls complete exactly once.
func NewPendingCommit() (p *PendingCommit, complete func(*Envelope, error)) {
	p = &PendingCommit{done: make(chan struct{})}
	return p, func(env *Envelope, err error) {
		p.env, p.err = env, err
		close(p.done)
	}
}

// Done is closed when the commit is durable or has failed.
func (p *PendingCommit) Done() <-chan struct{} { return p.done }

// Wait waits for the commit and returns what CommitStep would have.
func (p *PendingCommit) Wait() (*Envelope, error) {
	<-p.done
	return p.env, p.err
}

// Idempotency statuses the store itself sets.
const (
	// IdempotencyPending is the status of a claimed key whose run has not
	// finished: the run is in progress, or was interrupted by a crash.
	IdempotencyPending = "pending"
)

// DefaultIdempotencyTTL is how long an idempotency key lives when
// ClaimIdempotencyKey is given no ttl.
const DefaultIdempotencyTTL = 24 * time.Hour

// IdempotencyRecord is a claimed idempotency key.
type IdempotencyRecord struct {
	// Key is the client's idempotency key.
	Key string `json:"key"`
	// RequestHash identifies the request (program and input): a repeat
	// with another hash is a conflict.
	RequestHash string `json:"request_hash"`
	// TraceID is the run the key started. Its JSON name keeps the older
	// word: the record is stored under it.
	TraceID string `json:"execution_id"`
	// Status is IdempotencyPending until FinishIdempotencyKey records the
	// run's terminal status.
	Status string `json:"status"`
	// CreatedAt is when the key was claimed.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the key stops being honoured.
	ExpiresAt time.Time `json:"expires_at"`
}

// SecretRecord is a vault entry as stored: ciphertext only.
type SecretRecord struct {
	// ID is the secret's id, the <id> in vault://secret/<id>.
	ID string `json:"id"`
	// Salt is random per secret and public: projections use it to show a
	// stable, unlinkable token for the ref.
	Salt string `json:"salt"`
	// Nonce is the AES-GCM nonce; empty once erased.
	Nonce []byte `json:"nonce,omitempty"`
	// Ciphertext is the sealed value; empty once erased.
	Ciphertext []byte `json:"ciphertext,omitempty"`
	// CreatedAt is when the secret was stored.
	CreatedAt time.Time `json:"created_at"`
	// Tombstoned is true once the secret was erased.
	Tombstoned bool `json:"tombstoned,omitempty"`
	// ErasedAt is when the secret was erased; zero until then.
	ErasedAt time.Time `json:"erased_at,omitzero"`
}
