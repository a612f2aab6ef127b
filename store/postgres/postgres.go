// Package postgres is the PostgreSQL implementation of store.Store, for
// several nano-vm-mcp replicas serving one database. It passes the same
// conformance suite (store/storetest) as the bbolt file and writes the
// same bytes: records, steps and envelopes are stored exactly as the
// bbolt store stores them, so the audit chain hashes and verifies alike.
//
// # Invariants
//
//   - A write returns once committed (synchronous_commit as the server is
//     configured; on by default: fsynced).
//   - Step commits of one replica are grouped: one committer goroutine
//     writes everything queued in one transaction of two round trips, so
//     durable throughput grows with concurrency.
//   - One global chain across replicas, gap-free: every transaction that
//     appends envelopes first locks the single row of nanovm_chain_head
//     (SELECT … FOR UPDATE), so appends are serialised across replicas.
//   - A step commit carrying a lease (store.StepCommit.Lease) is checked
//     against nanovm_leases in the same transaction: a replica that lost
//     its lease commits nothing. Every write of a lease row (acquisition,
//     release, deletion) holds the chain head, so the check under the
//     head needs no row lock. So does a run's last write (EndRun), which
//     also finishes its idempotency key and releases the lease.
//   - The per-run writes (leasing and recording a new run, step commits,
//     lease releases) go through the committer and share its batches: a
//     program costs a share of a few transactions, not transactions of
//     its own.
//   - The schema is versioned (nanovm_meta.schema_version); Open applies
//     missing migrations under an advisory lock and refuses a database
//     whose schema is newer than this build (store.ErrSchemaTooNew).
//   - The DSN's password never appears in an error (Redact).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanovm/nano-vm-mcp/store"
)

// SchemaVersion is the schema this build writes.
const SchemaVersion = 1

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	// Now is the clock for stored timestamps (not for leases, which use
	// the database's clock). The default is time.Now.
	Now func() time.Time
	// MaxBatchSize caps how many step commits share one transaction; the
	// default is 1000.
	MaxBatchSize int
	// MaxConns caps the connection pool unless the DSN sets
	// pool_max_conns; the default is 16.
	MaxConns int32
}

// DB is the PostgreSQL store. It is safe for concurrent use.
type DB struct {
	pool     *pgxpool.Pool
	dsn      string // redacted
	now      func() time.Time
	maxBatch int

	mu     sync.RWMutex
	closed bool
	queue  chan *stepReq
	done   chan struct{}

	batches, commits, headHeld atomic.Int64
	// fastBatches counts the one-trip batches committed, fastAgain the
	// ones a statement refused (run again as two trips).
	fastBatches, fastAgain atomic.Int64

	// What the committer knows from its own commits (fast.go): the head
	// its last batch left, each run's lease and next index; pause asks
	// for fastPause two-trip batches.
	cmu   sync.Mutex
	known map[string]runState
	head  headState
	pause bool

	// released are leases their run's last write released (markReleased).
	relMu    sync.Mutex
	released map[store.Lease]struct{}

	// watchers are the channels RunChanged handed out, by trace id.
	watchMu  sync.Mutex
	watchers map[string]map[*runWatch]struct{}

	listenCancel context.CancelFunc
	listenDone   chan struct{}
	tools        chan struct{}
}

var (
	_ store.Store          = (*DB)(nil)
	_ store.LeaseStore     = (*DB)(nil)
	_ store.KeyCheckStore  = (*DB)(nil)
	_ store.ChangeNotifier = (*DB)(nil)
	_ store.RunNotifier    = (*DB)(nil)
)

// IsDSN reports whether addr names a PostgreSQL database (a postgres://
// or postgresql:// URL) rather than a bbolt file.
func IsDSN(addr string) bool {
	l := strings.ToLower(addr)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

var passwordParam = regexp.MustCompile(`(?i)(password=)[^&\s]*`)

// Redact returns the DSN with its password (in the user info or a
// password= parameter) replaced by "xxxxx": what logs and errors show.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparseable: show the scheme only.
		if i := strings.Index(dsn, "://"); i >= 0 {
			return dsn[:i+3] + "…"
		}
		return "postgres://…"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.RawQuery
	u.RawQuery = passwordParam.ReplaceAllString(q, "${1}xxxxx")
	return u.String()
}

// redactErr removes the DSN's password from err's text, whatever pgx put
// in it.
func redactErr(dsn string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	u, perr := url.Parse(dsn)
	if perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			if strings.Contains(msg, pw) {
				return errors.New(strings.ReplaceAll(msg, pw, "xxxxx"))
			}
		}
	}
	if m := passwordParam.FindAllString(dsn, -1); len(m) > 0 {
		for _, p := range m {
			if pw := p[len("password="):]; pw != "" && strings.Contains(msg, pw) {
				return errors.New(strings.ReplaceAll(msg, pw, "xxxxx"))
			}
		}
	}
	return err
}

// Open connects to the database dsn names, applies missing migrations and
// starts the step committer. A database whose schema is newer than this
// build is refused with store.ErrSchemaTooNew.
func Open(ctx context.Context, dsn string, opts *Options) (*DB, error) {
	o := Options{Now: time.Now, MaxBatchSize: 1000, MaxConns: 16}
	if opts != nil {
		if opts.Now != nil {
			o.Now = opts.Now
		}
		if opts.MaxBatchSize > 0 {
			o.MaxBatchSize = opts.MaxBatchSize
		}
		if opts.MaxConns > 0 {
			o.MaxConns = opts.MaxConns
		}
	}
	red := Redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", red, redactErr(dsn, err))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = o.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", red, redactErr(dsn, err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", red, redactErr(dsn, err))
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", red, redactErr(dsn, err))
	}
	db := &DB{
		pool: pool, dsn: red, now: o.Now, maxBatch: o.MaxBatchSize,
		queue: make(chan *stepReq, o.MaxBatchSize), done: make(chan struct{}),
		tools: make(chan struct{}, 1), listenDone: make(chan struct{}),
		released: map[store.Lease]struct{}{}, known: map[string]runState{}, watchers: map[string]map[*runWatch]struct{}{},
	}
	lctx, cancel := context.WithCancel(context.Background())
	db.listenCancel = cancel
	go db.listen(lctx, cfg.ConnConfig.Copy())
	go db.commitLoop()
	return db, nil
}

// Close waits for queued commits and closes the pool.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.queue)
	db.mu.Unlock()
	<-db.done
	db.listenCancel()
	<-db.listenDone
	db.pool.Close()
	return nil
}

// String names the database, without its password.
func (db *DB) String() string { return db.dsn }

func (db *DB) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return store.ErrClosed
	}
	return nil
}

// migrations[i] brings schema i to i+1.
var migrations = []string{
	`CREATE TABLE nanovm_chain_head (id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO nanovm_chain_head VALUES (1, 0, '');
CREATE TABLE nanovm_programs (id text PRIMARY KEY, created_ns bigint NOT NULL, record bytea NOT NULL);
CREATE INDEX nanovm_programs_time ON nanovm_programs (created_ns, id);
CREATE TABLE nanovm_executions (id text PRIMARY KEY, program_id text NOT NULL, status text NOT NULL, created_ns bigint NOT NULL, record bytea NOT NULL);
CREATE INDEX nanovm_executions_time ON nanovm_executions (created_ns, id);
CREATE INDEX nanovm_executions_program ON nanovm_executions (program_id, created_ns, id);
CREATE INDEX nanovm_executions_open ON nanovm_executions (created_ns, id) WHERE status IN ('running', 'suspended');
CREATE TABLE nanovm_exec_bodies (id text PRIMARY KEY, input bytea, program bytea);
CREATE TABLE nanovm_steps (exec_id text NOT NULL, idx int NOT NULL, data bytea NOT NULL, PRIMARY KEY (exec_id, idx));
CREATE TABLE nanovm_envelopes (seq bigint PRIMARY KEY, exec_id text NOT NULL, value bytea NOT NULL);
CREATE INDEX nanovm_envelopes_exec ON nanovm_envelopes (exec_id, seq) WHERE exec_id <> '';
CREATE TABLE nanovm_idempotency (key text PRIMARY KEY, expires_ns bigint NOT NULL, record bytea NOT NULL);
CREATE INDEX nanovm_idempotency_expiry ON nanovm_idempotency (expires_ns);
CREATE TABLE nanovm_secrets (id text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE nanovm_tool_modules (sha256 text PRIMARY KEY, module bytea NOT NULL);
CREATE TABLE nanovm_tool_versions (name text NOT NULL, sha256 text NOT NULL, record bytea NOT NULL, PRIMARY KEY (name, sha256));
CREATE TABLE nanovm_tools_current (name text PRIMARY KEY, sha256 text NOT NULL);
CREATE TABLE nanovm_replicas (id text PRIMARY KEY, policy_hash text NOT NULL, serving boolean NOT NULL, started_at timestamptz NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE nanovm_leases (trace_id text PRIMARY KEY, owner text NOT NULL, epoch bigint NOT NULL, released boolean NOT NULL);`,
}

// migrateLock is the advisory lock replicas starting at once migrate
// under, one after the other.
const migrateLock = 0x6e616e6f766d // "nanovm"

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS nanovm_meta (key text PRIMARY KEY, value bytea NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var version int
		var v []byte
		err := tx.QueryRow(ctx, `SELECT value FROM nanovm_meta WHERE key = 'schema_version'`).Scan(&v)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("migrate: %w", err)
		default:
			if _, err := fmt.Sscanf(string(v), "%d", &version); err != nil {
				return fmt.Errorf("%w: schema version %q", store.ErrCorrupt, v)
			}
		}
		if version > SchemaVersion {
			return fmt.Errorf("%w: the database has schema %d, this build supports up to %d: run the newer nano-vm-mcp, or a fresh database", store.ErrSchemaTooNew, version, SchemaVersion)
		}
		for ; version < SchemaVersion; version++ {
			if _, err := tx.Exec(ctx, migrations[version]); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", version, version+1, err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO nanovm_meta (key, value) VALUES ('schema_version', $1)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, []byte(fmt.Sprint(SchemaVersion)))
		return err
	})
}

// VaultKeyCheck implements store.KeyCheckStore.
func (db *DB) VaultKeyCheck(ctx context.Context, check []byte) ([]byte, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	var stored []byte
	err := db.pool.QueryRow(ctx, `WITH ins AS (
  INSERT INTO nanovm_meta (key, value) VALUES ('vault_key_check', $1) ON CONFLICT (key) DO NOTHING RETURNING value)
SELECT value FROM ins UNION ALL SELECT value FROM nanovm_meta WHERE key = 'vault_key_check' LIMIT 1`, check).Scan(&stored)
	if err != nil {
		return nil, fmt.Errorf("vault key check: %w", err)
	}
	return stored, nil
}

// ToolsChanged implements store.ChangeNotifier.
func (db *DB) ToolsChanged() <-chan struct{} { return db.tools }

const (
	toolsChannel = "nanovm_tools"
	// runsChannel carries the id of a run whose end was recorded (for a
	// run with an idempotency key) or whose lease was given up.
	runsChannel = "nanovm_runs"
)

// listen keeps a connection LISTENing for tool and run changes,
// reconnecting with backoff; every reconnection counts as a change of
// everything (some may have been missed).
func (db *DB) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer close(db.listenDone)
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+toolsChannel+"; LISTEN "+runsChannel)
		}
		if err == nil {
			if !first {
				db.signalTools()
			}
			// A watcher registered before LISTEN took effect may have
			// missed its run's notification.
			db.signalRuns("")
			first = false
			backoff = 100 * time.Millisecond
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					break
				}
				if n.Channel == runsChannel {
					db.signalRuns(n.Payload)
				} else {
					db.signalTools()
				}
			}
			// Runs changed while nobody listened may go unnoticed.
			db.signalRuns("")
		}
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(cctx)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type runWatch struct {
	ch   chan struct{}
	once sync.Once
}

func (w *runWatch) fire() { w.once.Do(func() { close(w.ch) }) }

// RunChanged implements store.RunNotifier.
func (db *DB) RunChanged(traceID string) (<-chan struct{}, func()) {
	w := &runWatch{ch: make(chan struct{})}
	db.watchMu.Lock()
	m := db.watchers[traceID]
	if m == nil {
		m = map[*runWatch]struct{}{}
		db.watchers[traceID] = m
	}
	m[w] = struct{}{}
	db.watchMu.Unlock()
	return w.ch, func() {
		db.watchMu.Lock()
		if m := db.watchers[traceID]; m != nil {
			delete(m, w)
			if len(m) == 0 {
				delete(db.watchers, traceID)
			}
		}
		db.watchMu.Unlock()
	}
}

// signalRuns wakes the watchers of traceID, or every watcher when
// traceID is empty.
func (db *DB) signalRuns(traceID string) {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	for id, m := range db.watchers {
		if traceID != "" && id != traceID {
			continue
		}
		for w := range m {
			w.fire()
		}
		delete(db.watchers, id)
	}
}

func (db *DB) signalTools() {
	select {
	case db.tools <- struct{}{}:
	default:
	}
}

// isUnique reports a unique violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
