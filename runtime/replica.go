package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// Replicas. On a store several processes share (store.LeaseStore:
// PostgreSQL), this process is one replica: it heartbeats every third of
// Config.LeaseTimeout, holds a lease on every execution it runs (step
// commits carry it, so a replica that lost it commits nothing), and every
// half LeaseTimeout takes over the running executions no live replica
// holds, continuing each from its last durable step. On a bbolt file
// there is one process and none of this runs.

// DefaultLeaseTimeout is the default of Config.LeaseTimeout.
const DefaultLeaseTimeout = 15 * time.Second

// runtimeStore is what the runtime needs of its store: store.Store, and
// what the tool registry reads.
type runtimeStore interface {
	store.Store
	tools.Store
}

type replica struct {
	rt *Runtime
	ls store.LeaseStore
	id string

	// runs is the context of the runs this replica took over; cancelled
	// when the runtime closes, so they stop after their current step.
	runs       context.Context
	cancelRuns context.CancelFunc

	me     store.Replica
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// ErrPolicyMismatch is returned by Open when another live replica of the
// shared database runs under another policy: every replica must load the
// same policy, so that each envelope's policy hash names the policy its
// step ran under whichever replica ran it.
var ErrPolicyMismatch = errors.New("another replica runs under another policy")

func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// startReplica records this process as a replica, refusing to start when
// a live one runs under another policy, and starts its heartbeat and its
// takeover scan.
func (rt *Runtime) startReplica(ctx context.Context, ls store.LeaseStore) (*replica, error) {
	r := &replica{rt: rt, ls: ls, id: replicaID(), done: make(chan struct{})}
	ttl := rt.cfg.LeaseTimeout
	me := store.Replica{ID: r.id, PolicyHash: rt.policy.Hash(), Serving: rt.cfg.TakeOver}
	live, err := ls.Heartbeat(ctx, me, ttl)
	if err != nil {
		return nil, err
	}
	for _, o := range live {
		if me.Serving && o.Serving && o.ID != r.id && o.PolicyHash != me.PolicyHash {
			_, _ = ls.Heartbeat(ctx, me, -time.Second)
			return nil, fmt.Errorf("open %s: %w: replica %s runs under policy %s, this one would run under %s; give every replica the same policy file (NANO_VM_MCP_POLICY), and stop them all to change it",
				postgres.Redact(rt.cfg.DBPath), ErrPolicyMismatch, o.ID, o.PolicyHash, me.PolicyHash)
		}
	}
	rt.log.Info("replica of a shared database", "replica", r.id, "replicas_live", len(live), "lease_timeout", ttl, "policy_hash", me.PolicyHash)
	r.runs, r.cancelRuns = context.WithCancel(context.Background())
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	var changed <-chan struct{}
	if n, ok := rt.store.(store.ChangeNotifier); ok {
		changed = n.ToolsChanged()
	}
	r.me = me
	go r.loop(lctx, me, changed)
	return r, nil
}

func (r *replica) loop(ctx context.Context, me store.Replica, changed <-chan struct{}) {
	defer close(r.done)
	ttl := r.rt.cfg.LeaseTimeout
	hb := time.NewTicker(max(ttl/3, time.Millisecond))
	defer hb.Stop()
	scan := time.NewTicker(max(ttl/2, time.Millisecond))
	defer scan.Stop()
	if me.Serving {
		r.takeOver(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			if _, err := r.ls.Heartbeat(ctx, me, ttl); err != nil && ctx.Err() == nil {
				r.rt.log.Warn("replica heartbeat failed: if it stays failed for the lease timeout, other replicas take this one's runs over and its commits are refused", "replica", r.id, "err", err)
			}
		case <-scan.C:
			if me.Serving {
				r.takeOver(ctx)
			}
		case <-changed:
			// Another replica registered or removed a tool: drop the
			// cached current versions (compiled code stays cached).
			r.rt.registry.ForgetCurrent()
			r.rt.notifyToolsChanged()
		}
	}
}

// takeOver continues, in the background, the running executions no live
// replica holds whose policy is this replica's.
func (r *replica) takeOver(ctx context.Context) {
	orphans, err := r.ls.Orphans(ctx, 64)
	if err != nil {
		if ctx.Err() == nil {
			r.rt.log.Warn("replica: listing orphaned runs failed", "err", err)
		}
		return
	}
	mine := r.rt.policy.Hash()
	for _, exec := range orphans {
		if exec.PolicyHash != mine {
			continue
		}
		r.rt.mu.Lock()
		busy := r.rt.active[exec.ID] || r.rt.closed
		r.rt.mu.Unlock()
		if busy {
			continue
		}
		go func() {
			res, err := r.rt.continueRun(r.runs, exec, nil)
			switch {
			case errors.Is(err, store.ErrLeaseHeld):
				// Another replica (or this one) got there first.
			case err != nil:
				r.rt.log.Info("replica: a run taken over stopped", "trace_id", exec.ID, "err", err)
			default:
				r.rt.log.Info("replica: took a run over and finished it", "trace_id", exec.ID, "status", res.Status, "steps", res.Steps)
			}
		}()
	}
}

// stop ends the heartbeat and lets this replica's heartbeat lapse at
// once, so that the others take over whatever it leaves running without
// waiting for the lease timeout.
func (r *replica) stop() {
	r.once.Do(func() {
		r.cancelRuns()
		r.cancel()
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = r.ls.Heartbeat(ctx, r.me, -time.Second)
	})
}

// ReplicaID names this process among the replicas of a shared database;
// "" on a bbolt file.
func (rt *Runtime) ReplicaID() string {
	if rt.replica == nil {
		return ""
	}
	return rt.replica.id
}

// lease takes the lease of execution id on a shared store (nil, nil on a
// bbolt file). A lease another live replica holds is store.ErrLeaseHeld.
func (rt *Runtime) lease(ctx context.Context, id string) (*store.Lease, error) {
	if rt.replica == nil {
		return nil, nil
	}
	l, err := rt.replica.ls.AcquireLease(ctx, id, rt.replica.id)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.leases[id] = l
	rt.mu.Unlock()
	return &l, nil
}

// record stores a new run: on a shared store it takes the run's lease
// and records the run in one write (store.LeaseStore.StartRun); a lease
// another live replica holds is store.ErrLeaseHeld. On a store that
// tells them (store.RunRecordStore), it also returns the run record's
// stored bytes, for the first step's envelope to commit to.
func (rt *Runtime) record(ctx context.Context, exec store.Run) (store.Run, *store.Lease, store.StoredRun, error) {
	if rt.replica == nil {
		var out store.Run
		var stored store.StoredRun
		var err error
		if rs, ok := rt.store.(store.RunRecordStore); ok {
			out, stored, err = rs.PutRunStored(ctx, exec)
		} else {
			out, err = rt.store.PutRun(ctx, exec)
		}
		if err != nil {
			return out, nil, store.StoredRun{}, fmt.Errorf("record run: %w", err)
		}
		return out, nil, stored, nil
	}
	out, l, err := rt.replica.ls.StartRun(ctx, exec, rt.replica.id)
	if err != nil {
		return out, nil, store.StoredRun{}, err
	}
	rt.mu.Lock()
	rt.leases[exec.ID] = l
	rt.mu.Unlock()
	return out, &l, store.StoredRun{}, nil
}

// recordEnd makes a settled run's last writes: its record when put (the
// last step commit did not record how it ended) and its idempotency key's
// terminal status. On a shared store they are one write fenced by the
// run's lease, so a replica that lost the lease writes neither (a step
// commit that recorded the end did both already: store.RunEnd).
func (rt *Runtime) recordEnd(ctx context.Context, exec store.Run, put bool, lease *store.Lease) error {
	if rt.replica != nil && lease != nil {
		if !put {
			return nil
		}
		if err := rt.replica.ls.EndRun(ctx, store.RunEnd{Run: &exec, Lease: *lease}); err != nil {
			return fmt.Errorf("record run %s: %w", exec.ID, err)
		}
		return nil
	}
	if put {
		if _, err := rt.store.PutRun(ctx, exec); err != nil {
			return fmt.Errorf("record run %s: %w", exec.ID, err)
		}
	}
	if exec.IdempotencyKey != "" && exec.Status.Terminal() {
		if err := rt.store.FinishIdempotencyKey(ctx, exec.IdempotencyKey, string(exec.Status)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("finish idempotency key: %w", err)
		}
	}
	return nil
}

// unlease gives up execution id's lease, if this process holds one.
func (rt *Runtime) unlease(id string) {
	rt.mu.Lock()
	l, ok := rt.leases[id]
	delete(rt.leases, id)
	rt.mu.Unlock()
	if !ok || rt.replica == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.replica.ls.ReleaseLease(ctx, l); err != nil {
		rt.log.Warn("replica: releasing a lease failed; another replica takes the run over once this one's heartbeat lapses", "trace_id", id, "err", err)
	}
}

// Waiting for another replica's run of the same idempotency key: woken
// by the store's notification (store.RunNotifier) when the run ends or
// its lease goes, and polled with backoff from waitFirst to waitMax
// (waitMaxNotified when notifications come) in case one is missed; at
// most waitLimit in all.
const (
	waitFirst       = 10 * time.Millisecond
	waitMax         = 250 * time.Millisecond
	waitMaxNotified = 2 * time.Second
	waitLimit       = 10 * time.Minute
)

// CodeBusy: the run an idempotency key started is still running on
// another replica after waitLimit; send the same key again to wait more.
const CodeBusy = "busy"

// awaitOther waits until the execution an idempotency key started on
// another replica stops running there: it returns the stored outcome when
// the run ended or suspended, or runs or continues it here when its
// replica died (the lease is then free).
func (rt *Runtime) awaitOther(ctx context.Context, req RunRequest, l *loaded, input []byte, execID string) (*RunResult, error) {
	key := req.IdempotencyKey
	wait, most := waitFirst, waitMax
	notifier, _ := rt.store.(store.RunNotifier)
	if notifier != nil {
		most = waitMaxNotified
	}
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	var changed <-chan struct{}
	stop := func() {}
	defer func() { stop() }()
	for {
		// Watch before reading, so that an end recorded in between wakes
		// the wait below.
		if notifier != nil {
			stop()
			changed, stop = notifier.RunChanged(execID)
		}
		exec, err := rt.store.Run(ctx, execID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Claimed, not stored yet: whoever holds the lease runs it.
			res, err := rt.start(ctx, l, req.Input, input, key, execID, req.Progress)
			if !errors.Is(err, store.ErrLeaseHeld) {
				return res, err
			}
		case errors.Is(err, store.ErrCorrupt):
			return nil, undecodable(execID, "its execution record", err)
		case err != nil:
			return nil, err
		case exec.Status == kernel.StatusRunning:
			rt.mu.Lock()
			here := rt.active[exec.ID]
			rt.mu.Unlock()
			if here {
				// This replica runs it already (it took the run over):
				// wait for it as for another replica.
				break
			}
			res, err := rt.continueRun(ctx, exec, req.Progress)
			if !errors.Is(err, store.ErrLeaseHeld) {
				return res, err
			}
		default:
			res, err := rt.result(ctx, exec)
			if err != nil {
				return nil, err
			}
			res.StoredOutcome = true
			return res, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-limit.C:
			t.Stop()
			return nil, newError(CodeBusy, nil, "idempotency key %q: its run %s is still running on another replica after %s; send the same key again to wait for it", key, execID, waitLimit)
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, most)
	}
}
