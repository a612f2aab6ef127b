package store

import (
	"context"
	"errors"
	"time"
)

// Leases let several processes (replicas) run one database's executions:
// a running execution is leased to the replica running it, a replica that
// stops heartbeating loses its leases, and another takes its executions
// over. A Store that many processes open (store/postgres) implements
// LeaseStore; the bbolt file has one process, whose leases are implied:
// it implements none of this, and the runtime asks nothing of it.

var (
	// ErrLeaseHeld is returned by AcquireLease when another live replica
	// holds the execution's lease.
	ErrLeaseHeld = errors.New("execution is leased by another replica")
	// ErrLeaseLost is returned by a fenced write (StepCommit.Lease) when
	// the lease it carries is no longer the execution's: another replica
	// took the execution over. Nothing is written.
	ErrLeaseLost = errors.New("lease lost: another replica took the execution over")
)

// Lease is one replica's hold on one execution. Epoch grows with every
// acquisition, so a write fenced with an older epoch is refused.
type Lease struct {
	TraceID string `json:"trace_id"`
	Owner   string `json:"owner"`
	Epoch   uint64 `json:"epoch"`
}

// Replica is one process serving a shared database, as its heartbeat
// records it.
type Replica struct {
	// ID names the replica; unique per process.
	ID string `json:"id"`
	// PolicyHash is the hash of the policy the replica runs under.
	PolicyHash string `json:"policy_hash"`
	// Serving is true for a server (it takes runs over); false for a
	// CLI command that opened the database for a while.
	Serving bool `json:"serving"`
	// StartedAt and ExpiresAt are when it first heartbeat and when its
	// heartbeat lapses (its leases then lapse with it).
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LeaseStore is implemented by stores that several replicas share.
type LeaseStore interface {
	// Heartbeat records r alive for ttl (its leases live as long) and
	// returns every live replica, r included.
	Heartbeat(ctx context.Context, r Replica, ttl time.Duration) ([]Replica, error)
	// AcquireLease leases an execution to owner (a replica that
	// heartbeats): when no lease is recorded, when the recorded one was
	// released, is owner's, or belongs to a replica whose heartbeat
	// lapsed. The epoch grows with each acquisition. A lease of another
	// live replica is ErrLeaseHeld; the returned Lease names it.
	AcquireLease(ctx context.Context, traceID, owner string) (Lease, error)
	// ReleaseLease gives a lease up, so that any replica may take the
	// execution at once. A lease no longer held at l.Epoch is left alone.
	ReleaseLease(ctx context.Context, l Lease) error
	// Orphans lists, oldest first and at most limit, the running
	// executions no live replica holds a lease on: those whose replica
	// died, stopped, or let them go.
	Orphans(ctx context.Context, limit int) ([]Run, error)
	// StartRun is AcquireLease followed by PutRun of e under that lease,
	// in one transaction: a new run costs one durable write, not two.
	// ErrLeaseHeld (nothing written) as AcquireLease.
	StartRun(ctx context.Context, e Run, owner string) (Run, Lease, error)
	// EndRun makes a run's last write, fenced by its lease: it writes only
	// while end.Lease is still the run's lease, else ErrLeaseLost and
	// nothing is written. See RunEnd.
	EndRun(ctx context.Context, end RunEnd) error
}

// RunEnd is what a run's settlement writes on a shared store (EndRun),
// in one transaction fenced by Lease.
//
// A fenced write that records a run as no longer running (a step commit
// carrying StepCommit.Lease whose Run.Status is not kernel.StatusRunning,
// or an EndRun with such a Run) also, in the same transaction, records
// the run's idempotency key (Run.IdempotencyKey, if any) as finished
// with that status when the status is terminal, and releases the lease
// when the run suspends (a finished run keeps it: nothing takes a
// finished run over): the runtime then has nothing left to write for the
// run, and its ReleaseLease writes nothing.
type RunEnd struct {
	// Run, when set, replaces the run's record as PutRun does.
	Run *Run
	// IdempotencyKey, when set, is finished with Status as
	// FinishIdempotencyKey does (a key that is absent is no error).
	IdempotencyKey, Status string
	// Lease fences the write.
	Lease Lease
}

// ChangeNotifier is implemented by stores shared by replicas that tell
// each other of changes (PostgreSQL's LISTEN/NOTIFY).
type ChangeNotifier interface {
	// ToolsChanged receives (coalesced) when any replica registered or
	// removed a tool, and after a lost notification connection is
	// restored (changes may have been missed): caches of the current
	// tool versions must be dropped.
	ToolsChanged() <-chan struct{}
}

// RunNotifier is implemented by stores shared by replicas that tell each
// other when a run may have stopped running somewhere (PostgreSQL's
// LISTEN/NOTIFY): a caller waiting for another replica's run of the same
// idempotency key is woken then instead of polling alone.
type RunNotifier interface {
	// RunChanged returns a channel that is closed once, after the call,
	// any replica recorded the end of traceID's run (a terminal or
	// suspended status, for a run started with an idempotency key) or gave
	// its lease up, or once notifications may have been missed (the
	// notification connection was lost). stop forgets the channel; call
	// it when done waiting.
	RunChanged(traceID string) (changed <-chan struct{}, stop func())
}
