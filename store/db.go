package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the schema this build writes. A file with a higher
// version is refused with ErrSchemaTooNew; a lower one is migrated on Open.
//
// Schema 2 added the record hashes of envelopes (Envelope.RecordSHA256 and
// the rest) and the legacy_execs bucket: migrating a schema-1 file lists
// its runs there, whose records no envelope covers; verify reports
// them as legacy rather than as tampered.
//
// Schema 3 added the step_log bucket (see steplog.go): migrating creates
// it and rewrites nothing, since readers take a step record stored in the
// steps bucket itself as well as a reference into the log.
const SchemaVersion = 3

// Options configures Open. A nil *Options means DefaultOptions().
type Options struct {
	// LockTimeout is how long Open waits for the file lock before returning
	// ErrLocked. The default is 2 s; zero means the default (bbolt itself
	// would otherwise wait forever).
	LockTimeout time.Duration
	// NoSync skips fsync on commit. The default, false, fsyncs every
	// commit: a committed write survives power loss. With NoSync a commit
	// survives a process crash but the last commits may be lost on power
	// loss or kernel panic (like SQLite WAL with synchronous=NORMAL).
	NoSync bool
	// MaxBatchSize caps how many writes share one commit. The default is
	// 1000; zero means the default.
	MaxBatchSize int
	// MaxBatchDelay is how long a commit waits for more writes to join it
	// when the queue is empty. The default is 0: a lone writer never waits,
	// and writes that arrive while a commit is being synced join the next
	// one anyway.
	MaxBatchDelay time.Duration
	// CheckOnOpen runs bbolt's full consistency check (every page) on Open.
	// The default is false: Open still validates the meta pages, the file
	// size and the schema, and any page fault later becomes ErrCorrupt.
	CheckOnOpen bool
	// Now is the clock for stored timestamps. The default is time.Now.
	Now func() time.Time
	// NoJournal turns the write-ahead journal off: every group commit then
	// pays bbolt's own two fdatasyncs (data pages, then the meta page)
	// instead of the journal's one. The default, false, keeps the journal
	// (<db>.journal, see JournalSuffix) wherever flock exists. With NoSync
	// there is no journal either: nothing is synced. A journal left by an
	// unclean stop is recovered on Open whatever these options say.
	NoJournal bool
	// JournalBytes is the size of a journal Open creates. The default
	// is DefaultJournalBytes (8 MiB); zero means the default. A
	// transaction bigger than half of it commits through bbolt's own
	// syncs. An existing journal keeps the size it was created with.
	JournalBytes int64
	// OnCommit, when set, is called by whoever commits (the committer
	// goroutine, or a lone writer committing its own write, see
	// DB.update) after each group commit with the number of writes it
	// held and how long it took
	// (every transaction of the batch, fsync included), for metrics. It
	// runs on the commit path: it must be cheap and must not write to the
	// store. nil (the default) means nothing is measured.
	OnCommit func(batch int, d time.Duration)
}

// DefaultOptions returns the options Open uses when given nil.
func DefaultOptions() *Options {
	return &Options{
		LockTimeout:  2 * time.Second,
		MaxBatchSize: 1000,
		JournalBytes: DefaultJournalBytes,
		Now:          time.Now,
	}
}

// Bucket names. Keys that combine an id with a number use a 0x00 separator
// (ids never contain it) and big-endian numbers so byte order is numeric
// order. The names are on disk: the run buckets keep the word "exec"
// ("execution"), the Go names say run (see docs/glossary.md, legacy names
// on disk).
var (
	bucketMeta         = []byte("meta")             // schema_version, chain head
	bucketPrograms     = []byte("programs")         // id → Program
	bucketProgramsTime = []byte("programs_by_time") // created ns | id → nil
	bucketRuns         = []byte("executions")       // id → Run without its body
	bucketRunBodies    = []byte("exec_bodies")      // id → runBody (input, program, checkpoint)
	bucketRunTime      = []byte("exec_by_time")     // created ns | id → nil
	bucketRunProgram   = []byte("exec_by_program")  // program id 0 created ns | id → nil
	bucketRunOpen      = []byte("exec_unfinished")  // created ns | id → nil
	bucketSteps        = []byte("steps")            // trace id 0 index → step JSON, or a reference into step_log (schema 3)
	bucketStepLog      = []byte("step_log")         // log number → step JSON (schema 3; see steplog.go)
	bucketEnvelopes    = []byte("envelopes")        // seq → Envelope
	bucketEnvRun       = []byte("env_by_exec")      // trace id 0 seq → nil
	bucketIdem         = []byte("idempotency")      // key → IdempotencyRecord
	bucketIdemExpiry   = []byte("idem_by_expiry")   // expires ns | key → nil
	bucketSecrets      = []byte("vault")            // id → SecretRecord
	bucketModules      = []byte("tool_modules")     // sha256 → bytes
	bucketToolVersions = []byte("tool_versions")    // name 0 sha256 → ToolRecord
	bucketToolCurrent  = []byte("tools_current")    // name → sha256
	bucketLegacyRuns   = []byte("legacy_execs")     // trace id → nil: runs from schema 1, records not covered

	allBuckets = [][]byte{
		bucketMeta, bucketPrograms, bucketProgramsTime, bucketRuns, bucketRunBodies,
		bucketRunTime, bucketRunProgram, bucketRunOpen, bucketSteps,
		bucketEnvelopes, bucketEnvRun, bucketIdem, bucketIdemExpiry,
		bucketSecrets, bucketModules, bucketToolVersions, bucketToolCurrent,
		bucketLegacyRuns, bucketStepLog,
	}

	keySchemaVersion = []byte("schema_version")
	keyChainHead     = []byte("chain_head")
)

// DB is the bbolt implementation of Store. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	now  func() time.Time

	maxBatch int
	delay    time.Duration
	onCommit func(batch int, d time.Duration)

	txc  txCache       // the committer's, see txCache
	head committedHead // the committer's, see committedHead

	// commitMu is held by whoever commits: the committer goroutine, or
	// a lone writer committing its own write (see DB.update). Everything
	// only "the committer" touches (txc, the journal fields below) is
	// touched under it once Open returns.
	commitMu sync.Mutex
	// inflight counts the writes queued and not yet finished: a writer
	// commits its own write only when it is zero, so it never overtakes
	// one queued before it.
	inflight atomic.Int64

	// The journal (see journal.go); jr is nil without one. Only the
	// committer touches these once Open returns.
	jr   *journal
	rec  *recorder // registered in recorders while the DB is open
	pin  *bolt.Tx  // the read transaction at the last journal checkpoint
	file *os.File  // bbolt's file, for reading its meta pages
	// pw gathers the page writes of commits bbolt does not sync (nil
	// when this bbolt cannot take it; see pwrite.go). Only the
	// committer's transactions write through it.
	pw   *pageWriter
	jerr error // set when the journal's state is unknown: writes fail
	// jkeep: a journal was found but the DB runs without one (NoSync,
	// NoJournal): Open recovered it and marked the bbolt file authoritative.
	jkeep  bool
	ckptAt int64 // journal bytes after which the committer checkpoints
	// forceCommit: journaledWrite commits even a transaction that
	// changed nothing (commitFreelist).
	forceCommit bool
	openDatasz  int // bbolt's mmap size at Open, if datasz cannot be read
	// otx is the write transaction kept open across journaled batches
	// (see opentx.go); dirty is set while it holds acknowledged writes
	// bbolt has not committed (a reader then commits it first), and
	// kick tells the committer, which commits it once idle.
	otx   openTx
	dirty atomic.Bool
	kick  chan struct{}
	// settles counts the reads that had to commit the open transaction.
	settles atomic.Int64
	// lastWrite is when the last batch ended (Unix ns).
	lastWrite atomic.Int64

	mu     sync.RWMutex // guards closed against Close racing writers
	closed bool
	queue  chan *writeReq
	done   chan struct{}
	// ckptReq asks the committer for a journal checkpoint (tests).
	ckptReq chan chan error
}

var _ Store = (*DB)(nil)

// Open opens (creating if absent) the database file at path.
//
// It returns ErrLocked when another process holds the file, ErrSchemaTooNew
// when a newer release wrote it, and ErrCorrupt when it is not a bbolt
// database or is truncated or damaged; it never panics on a bad file.
func Open(path string, opts *Options) (db *DB, err error) {
	o := DefaultOptions()
	if opts != nil {
		c := *opts
		if c.LockTimeout <= 0 {
			c.LockTimeout = o.LockTimeout
		}
		if c.MaxBatchSize <= 0 {
			c.MaxBatchSize = o.MaxBatchSize
		}
		if c.MaxBatchDelay < 0 {
			c.MaxBatchDelay = 0
		}
		if c.Now == nil {
			c.Now = o.Now
		}
		if c.JournalBytes <= 0 {
			c.JournalBytes = o.JournalBytes
		}
		o = &c
	}

	// The journal first: it is locked before the bbolt file is read,
	// and after an unclean stop its saved meta pages go back into the
	// bbolt file before anything else reads that file.
	journaled := journalSupported && !o.NoSync && !o.NoJournal
	jpath := path + JournalSuffix
	var j *journal
	var replay []jRecord
	if journalSupported && (journaled || fileExists(jpath)) {
		j, err = openJournal(jpath, o.JournalBytes, o.LockTimeout)
		if errors.Is(err, errJournalNoRoom) {
			// A device too full for a new journal: bbolt's own two
			// syncs per commit keep every guarantee (a later Open with
			// room creates the journal).
			j, err, journaled = nil, nil, false
		}
		if err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
		}
	}
	if j != nil {
		defer func() {
			if err != nil {
				_ = j.close()
			}
		}()
		if err := j.scan(func(r jRecord) error {
			r.ops = bytes.Clone(r.ops)
			replay = append(replay, r)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
		}
		if len(replay) > 0 {
			if err := restoreMetas(path, j.ckpt, replay[len(replay)-1].txid, o.LockTimeout); err != nil {
				return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
			}
		}
	}

	facts, err := precheck(path)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
	}
	if !facts.exists {
		// A file this Open creates and cannot finish (the disk filled
		// while bbolt wrote its first pages) is removed, so that the
		// next start, with space freed, does not find a torn file.
		defer func() {
			if err != nil && (errors.Is(err, ErrDiskFull) || errors.Is(err, ErrNotWritable)) {
				if fi, statErr := os.Stat(path); statErr == nil && fi.Mode().IsRegular() && fi.Size() < 64<<10 {
					_ = os.Remove(path)
				}
			}
		}()
	}
	if facts.exists && !facts.freelistSynced {
		// bbolt would rebuild the freelist in a goroutine we cannot
		// guard; walk the file read-only first so damage shows here.
		if err := walkReadOnly(path, o.LockTimeout); err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, err)
		}
	}

	// bbolt reads pages through mmap: a truncated file faults (SIGBUS)
	// and a damaged one can panic. Both become ErrCorrupt; the file
	// handle is captured so the lock is released even then.
	var file *os.File
	var bdb *bolt.DB
	bopts := &bolt.Options{
		Timeout:        o.LockTimeout,
		NoSync:         o.NoSync || journaled,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: journaled,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	if journaled {
		// The journal's pin (a read transaction held open) would block
		// bbolt's remapping of a growing file forever: map far ahead.
		// See DB.nearRemap for what happens when the file gets there.
		bopts.InitialMmapSize = journalMmap
	}
	err = guard(func() error {
		var err error
		bdb, err = bolt.Open(path, 0o600, bopts)
		return err
	})
	if err != nil && journaled && errors.Is(err, syscall.ENOMEM) {
		// No address space for the far-ahead mapping (a ulimit -v):
		// without it the pin could block a remap, so run on bbolt's
		// own syncs, after replaying the journal (recover does).
		if bdb == nil && file != nil {
			releaseFile(file)
		}
		journaled = false
		bopts.NoSync, bopts.InitialMmapSize, bopts.NoFreelistSync = o.NoSync, 0, false
		err = guard(func() error {
			var err error
			bdb, err = bolt.Open(path, 0o600, bopts)
			return err
		})
	}
	if err != nil {
		if bdb == nil && file != nil {
			releaseFile(file)
		}
		if env := EnvError(err); env != err {
			return nil, fmt.Errorf("open store %q: %w", path, env)
		}
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open store %q: %w (waited %s)", path, ErrLocked, o.LockTimeout)
		case errors.Is(err, ErrCorrupt):
			return nil, fmt.Errorf("open store %q: %w", path, err)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("open store %q: %w: %w", path, ErrCorrupt, err)
		}
		if fi, statErr := os.Stat(path); statErr == nil && fi.Mode().IsRegular() {
			// bbolt reports some malformed files with ad-hoc errors
			// ("file size too small", page size errors).
			return nil, fmt.Errorf("open store %q: %w: %w", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	d := &DB{
		bolt:     bdb,
		path:     path,
		now:      o.Now,
		maxBatch: o.MaxBatchSize,
		delay:    o.MaxBatchDelay,
		onCommit: o.OnCommit,
		file:     file,
		queue:    make(chan *writeReq, o.MaxBatchSize),
		done:     make(chan struct{}),
		ckptReq:  make(chan chan error),
		kick:     make(chan struct{}, 1),
	}
	defer func() {
		if err != nil {
			d.releaseJournal()
			_ = bdb.Close()
		}
	}()
	d.pw, _ = coalesceWrites(bdb, file)
	if err := checkSize(bdb); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if o.CheckOnOpen {
		if err := checkAll(bdb); err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, err)
		}
	}
	if j != nil {
		if err := d.recover(j, replay, journaled, facts.freelistSynced); err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
		}
	}
	if err := migrate(bdb, d.write, o.Now); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, EnvError(err))
	}
	go d.commitLoop()
	return d, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close waits for queued writes to commit and closes the file.
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
	dumpPageStats(db)
	// The committer has stopped: the final journal checkpoint is ours.
	// commitMu still, against a reader committing the open transaction
	// (settle) meanwhile.
	var errs []error
	db.commitMu.Lock()
	if err := db.closeJournal(); err != nil {
		errs = append(errs, err)
	}
	if err := db.bolt.Close(); err != nil {
		errs = append(errs, err)
	}
	db.releaseJournal()
	db.commitMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %q: %w", db.path, err)
	}
	return nil
}

// guard runs fn converting panics and memory faults on the mmapped file
// into ErrCorrupt.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

// checkSize catches a truncated file: the meta page records how many pages
// the file must hold.
func checkSize(bdb *bolt.DB) error {
	fi, err := os.Stat(bdb.Path())
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	return guard(func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			if tx.Size() > fi.Size() {
				return fmt.Errorf("%w: file is %d bytes but its meta page records %d (truncated)", ErrCorrupt, fi.Size(), tx.Size())
			}
			return nil
		})
	})
}

// checkAll reads every page. bbolt's own tx.Check runs in a goroutine
// where a damaged page panics beyond recover, so it is not used.
func checkAll(bdb *bolt.DB) error {
	return guard(func() error { return bdb.View(walk) })
}

func walkReadOnly(path string, timeout time.Duration) error {
	var file *os.File
	var bdb *bolt.DB
	err := guard(func() error {
		var err error
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{
			ReadOnly: true,
			Timeout:  timeout,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
		if err != nil {
			return err
		}
		return bdb.View(walk)
	})
	if bdb != nil {
		_ = bdb.Close()
	} else if file != nil {
		releaseFile(file)
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w (waited %s)", ErrLocked, timeout)
	}
	return err
}

// migrate creates the buckets of a new file and checks the schema version
// of an existing one.
func migrate(bdb *bolt.DB, update func(func(*bolt.Tx) error) error, now func() time.Time) error {
	var version uint64
	err := guard(func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(bucketMeta); m != nil {
				v := m.Get(keySchemaVersion)
				if len(v) != 8 {
					return fmt.Errorf("%w: schema version is %d bytes, want 8", ErrCorrupt, len(v))
				}
				version = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: file has schema %d, this build supports up to %d", ErrSchemaTooNew, version, SchemaVersion)
	}
	if version == SchemaVersion {
		return guard(func() error {
			return bdb.View(func(tx *bolt.Tx) error {
				for _, name := range allBuckets {
					if tx.Bucket(name) == nil {
						return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
					}
				}
				return nil
			})
		})
	}
	if version == 1 {
		if err := guard(func() error { return update(migrate1to2) }); err != nil {
			return err
		}
		version = 2
	}
	if version == 2 {
		return guard(func() error { return update(migrate2to3) })
	}
	// version 0: a new file. Later schema versions add their steps here,
	// each in its own transaction that ends by bumping the version.
	return guard(func() error {
		return update(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil && len(bucketList(tx)) > 0 {
				return fmt.Errorf("%w: bbolt file without a %q bucket is not a nano-vm-mcp store", ErrCorrupt, bucketMeta)
			}
			for _, name := range allBuckets {
				if err := createBucket(tx, name); err != nil {
					return err
				}
			}
			if err := put(tx, bucketMeta, []byte("created_at"), []byte(now().UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
			return put(tx, bucketMeta, keySchemaVersion, u64(SchemaVersion))
		})
	})
}

// migrate1to2 lists the runs a schema-1 file holds in legacy_execs:
// their envelopes carry no record hashes, so verify reports them as
// legacy instead of as records no envelope covers.
func migrate1to2(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if bytes.Equal(name, bucketLegacyRuns) || bytes.Equal(name, bucketStepLog) {
			continue
		}
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
	}
	if err := createBucket(tx, bucketLegacyRuns); err != nil {
		return fmt.Errorf("migrate schema 1 to 2: %w", err)
	}
	seen := map[string]bool{}
	mark := func(id []byte) error {
		if len(id) == 0 || seen[string(id)] {
			return nil
		}
		seen[string(id)] = true
		return put(tx, bucketLegacyRuns, bytes.Clone(id), nil)
	}
	if err := tx.Bucket(bucketRuns).ForEach(func(k, _ []byte) error { return mark(k) }); err != nil {
		return fmt.Errorf("migrate schema 1 to 2: %w", err)
	}
	// Steps whose run record is gone count too.
	if err := tx.Bucket(bucketSteps).ForEach(func(k, _ []byte) error {
		if len(k) > 9 {
			return mark(k[:len(k)-9])
		}
		return nil
	}); err != nil {
		return fmt.Errorf("migrate schema 1 to 2: %w", err)
	}
	return put(tx, bucketMeta, keySchemaVersion, u64(2))
}

// migrate2to3 creates the step log. The step records a schema-2 file
// holds stay where they are: readers take a record in the steps bucket as
// well as a reference into the log (stepRecord).
func migrate2to3(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if bytes.Equal(name, bucketStepLog) {
			continue
		}
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
	}
	if err := createBucket(tx, bucketStepLog); err != nil {
		return fmt.Errorf("migrate schema 2 to 3: %w", err)
	}
	return put(tx, bucketMeta, keySchemaVersion, u64(3))
}

func bucketList(tx *bolt.Tx) [][]byte {
	var names [][]byte
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, name)
		return nil
	})
	return names
}

// view runs a read transaction, converting faults to ErrCorrupt.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if db.dirty.Load() {
		// An acknowledged write bbolt has not committed: a read that
		// begins after a write was acknowledged sees it.
		if err := db.settle(); err != nil {
			return err
		}
	}
	return guard(func() error { return db.bolt.View(fn) })
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// joinKey builds id 0x00 big-endian(n).
func joinKey(id string, n uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, n)
}

// timeKey builds big-endian(unix ns) | id, ordering by time then id.
func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 0, 8+len(id))
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return append(k, id...)
}
