package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/checkpoint"
)

// checkpointFlags configure signed checkpoints of the audit chain. Keys
// come from files only: a signer key on the command line would land in
// shell history and process listings.
type checkpointFlags struct {
	signerFile, verifierFile, origin string
	// serve only: where and how often the server writes checkpoints.
	file, every, interval string
	// verify only: the checkpoint to verify against.
	check string
	// sign is set by the commands that sign (serve, audit checkpoint):
	// verify reads the signer key only to derive a verifier key when no
	// verifier key file is given.
	sign bool

	everyN    uint64
	intervalD time.Duration
	poll      time.Duration
}

// register adds the key and origin flags; serve adds the writer's.
func (f *checkpointFlags) register(fs *flag.FlagSet, serve bool) {
	fs.StringVar(&f.signerFile, "checkpoint-signer", "", "file holding the checkpoint signer key, mode 0600 (NANO_VM_MCP_CHECKPOINT_KEY_FILE; see audit keygen)")
	fs.StringVar(&f.verifierFile, "checkpoint-key", "", "file of trusted checkpoint verifier keys, one a line (NANO_VM_MCP_CHECKPOINT_VERIFIER_KEY_FILE; default the signer's own key)")
	fs.StringVar(&f.origin, "checkpoint-origin", "", "the chain's name in its checkpoints (NANO_VM_MCP_CHECKPOINT_ORIGIN; default nano-vm-mcp/<db file name>)")
	if serve {
		fs.StringVar(&f.file, "checkpoint-file", "", "write a signed checkpoint here, atomically, every N envelopes or D and at shutdown (NANO_VM_MCP_CHECKPOINT_FILE; default none)")
		fs.StringVar(&f.every, "checkpoint-every", "", "write a checkpoint once N envelopes were appended since the last (NANO_VM_MCP_CHECKPOINT_EVERY; default 0, off)")
		fs.StringVar(&f.interval, "checkpoint-interval", "", "write a checkpoint this often when the chain grew, e.g. 10m (NANO_VM_MCP_CHECKPOINT_INTERVAL; default 0, off)")
	}
}

// resolve fills unset flags from the environment (after --env-file was
// read) and validates them.
func (f *checkpointFlags) resolve(serve bool) error {
	fill := func(p *string, name string) {
		if *p == "" {
			*p = env(name)
		}
	}
	fill(&f.signerFile, "CHECKPOINT_KEY_FILE")
	fill(&f.verifierFile, "CHECKPOINT_VERIFIER_KEY_FILE")
	fill(&f.origin, "CHECKPOINT_ORIGIN")
	if !serve {
		return nil
	}
	fill(&f.file, "CHECKPOINT_FILE")
	fill(&f.every, "CHECKPOINT_EVERY")
	fill(&f.interval, "CHECKPOINT_INTERVAL")
	if f.every != "" {
		n, err := strconv.ParseUint(f.every, 10, 64)
		if err != nil {
			return usagef("--checkpoint-every %q: want a number of envelopes", f.every)
		}
		f.everyN = n
	}
	if f.interval != "" {
		d, err := time.ParseDuration(f.interval)
		if err != nil || d < 0 {
			return usagef("--checkpoint-interval %q: want a duration such as 10m", f.interval)
		}
		if d > 0 && d < time.Second {
			return usagef("--checkpoint-interval %v: at least 1s", d)
		}
		f.intervalD = d
	}
	if f.file == "" && (f.everyN > 0 || f.intervalD > 0) {
		return usagef("--checkpoint-every and --checkpoint-interval need --checkpoint-file (NANO_VM_MCP_CHECKPOINT_FILE)")
	}
	if f.file != "" && f.signerFile == "" {
		return usagef("--checkpoint-file needs a signer key: --checkpoint-signer or NANO_VM_MCP_CHECKPOINT_KEY_FILE (create one with audit keygen)")
	}
	return nil
}

// apply loads the keys into the runtime's configuration.
func (f *checkpointFlags) apply(cfg *runtime.Config) error {
	cfg.CheckpointOrigin = f.origin
	if f.signerFile != "" && (f.sign || f.verifierFile == "") {
		s, err := checkpoint.ReadSignerKeyFile(f.signerFile)
		if err != nil {
			return err
		}
		cfg.CheckpointSigner = s
	}
	if f.verifierFile != "" {
		keys, err := checkpoint.ReadVerifierKeyFile(f.verifierFile)
		if err != nil {
			return err
		}
		cfg.CheckpointVerifierKeys = keys
	}
	return nil
}

// cmdAuditKeygen writes a new checkpoint key pair: NAME.key (the signer
// key, 0600) and NAME.pub (the verifier key), never replacing a file.
func cmdAuditKeygen(cmd *command, args []string, cio *cliIO) error {
	fs := newCommandFlags(cmd)
	dir := fs.String("dir", ".", "folder to write NAME.key and NAME.pub in")
	pos, err := parseFlags(cmd, fs, args, nil, cio)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("audit keygen NAME [--dir DIR]")
	}
	skey, vkey, err := checkpoint.GenerateKey(pos[0])
	if err != nil {
		return err
	}
	spath := filepath.Join(*dir, pos[0]+".key")
	vpath := filepath.Join(*dir, pos[0]+".pub")
	if _, err := os.Stat(vpath); err == nil {
		return fmt.Errorf("audit keygen: %s exists: refusing to replace a key", vpath)
	}
	if err := checkpoint.CreateFile(spath, []byte(skey+"\n"), 0o600); err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	if err := checkpoint.CreateFile(vpath, []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	fmt.Fprintf(cio.stdout, "signer key written to %s (secret: NANO_VM_MCP_CHECKPOINT_KEY_FILE)\nverifier key written to %s (NANO_VM_MCP_CHECKPOINT_VERIFIER_KEY_FILE):\n%s\n", spath, vpath, vkey)
	return nil
}

// cmdAuditCheckpoint verifies the whole chain and writes its head signed,
// to --out or stdout.
func cmdAuditCheckpoint(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	out := fs.String("out", "", "write the checkpoint to this file, atomically (default stdout)")
	cp := &checkpointFlags{sign: true}
	cp.register(fs, false)
	c.cp = cp
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("audit checkpoint [--out FILE] takes no arguments")
	}
	if err := cp.resolve(false); err != nil {
		return err
	}
	if cp.signerFile == "" {
		return usagef("audit checkpoint needs a signer key: --checkpoint-signer or NANO_VM_MCP_CHECKPOINT_KEY_FILE (create one with audit keygen)")
	}
	ctx := context.Background()
	c.noBundled = true
	rt, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	var prev *checkpoint.Checkpoint
	if *out != "" {
		if prev, err = existingCheckpoint(ctx, rt, *out); err != nil {
			return err
		}
	}
	msg, ck, err := rt.SignCheckpoint(ctx, true, prev)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := cio.stdout.Write(msg)
		return err
	}
	if err := checkpoint.WriteFile(*out, msg, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(cio.stdout, "checkpoint written to %s: %s, seq %d, hash %s\n", *out, ck.Origin, ck.Size, ck.Hash)
	return nil
}

// existingCheckpoint reads the checkpoint at path, if any, so a new one
// replaces it only when the chain still extends it: a checkpoint is
// evidence, and one the chain no longer extends is the evidence of a
// rewrite.
func existingCheckpoint(ctx context.Context, rt *runtime.Runtime, path string) (*checkpoint.Checkpoint, error) {
	msg, err := checkpoint.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refusing to replace %s: %w", path, err)
	}
	c, _, err := rt.OpenCheckpoint(msg)
	if err != nil {
		return nil, fmt.Errorf("refusing to replace %s, which is not a checkpoint of this chain by a trusted key: %w (move it away to start afresh)", path, err)
	}
	if chk := rt.CheckExtends(ctx, c); !chk.OK {
		return nil, fmt.Errorf("refusing to replace %s: the chain no longer extends it: %s (keep it as evidence; run audit verify --checkpoint %s)", path, chk.Reason, path)
	}
	return &c, nil
}

// verifyCheckpointCmd is audit verify --checkpoint FILE.
func verifyCheckpointCmd(ctx context.Context, rt *runtime.Runtime, path string, cio *cliIO) error {
	msg, err := checkpoint.ReadFile(path)
	if err != nil {
		return err
	}
	rep, err := rt.VerifyCheckpoint(ctx, msg)
	if err != nil {
		return err
	}
	cc := rep.Checkpoint
	if !cc.OK {
		where := ""
		if cc.Seq > 0 {
			where = fmt.Sprintf(" at seq %d", cc.Seq)
		}
		chain := "the chain itself verifies"
		switch {
		case rep.Chain.Broken == nil && !rep.Chain.OK:
			chain = fmt.Sprintf("the envelopes hold, but %d stored record(s) do not match them", len(rep.Chain.Records)+rep.Chain.RecordsOmitted)
		case rep.Chain.Broken != nil:
			chain = fmt.Sprintf("the chain itself is broken at seq %d (%s): %s", rep.Chain.Broken.Seq, rep.Chain.Broken.Problem, rep.Chain.Broken.Reason)
		}
		return fmt.Errorf("audit chain does NOT extend checkpoint %s (%s%s): %s; %s", path, cc.Problem, where, cc.Reason, chain)
	}
	fmt.Fprintf(cio.stdout, "audit chain verified: %d envelope(s), head seq %d hash %s\ncheckpoint %s holds: %s seq %d hash %s, signed by %s\n",
		rep.Chain.Checked, rep.Chain.HeadSeq, rep.Chain.HeadHash, path, cc.Origin, cc.Size, cc.Hash, cc.SignedBy)
	return nil
}

// checkpointWriter is serve's periodic checkpoint: every N envelopes
// and/or every D when the chain grew, and at shutdown. It polls the
// recorded head (one small read transaction) instead of hooking commits,
// so the commit path is untouched and envelopes appended by any writer
// count. See .rationale/storage.md "Why does the server poll the head for
// checkpoints?".
type checkpointWriter struct {
	rt       *runtime.Runtime
	path     string
	every    uint64
	interval time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	last      *checkpoint.Checkpoint
	lastWrite time.Time
	stopped   bool // after a refusal: the file holds evidence
	cancel    context.CancelFunc
	done      chan struct{}
}

// startCheckpointWriter starts serve's writer, or returns a no-op when no
// checkpoint file is configured. An existing file the chain no longer
// extends stops the server from starting: it is evidence of a rewrite.
func startCheckpointWriter(rt *runtime.Runtime, f *checkpointFlags, logger *slog.Logger) (stop func(), err error) {
	if f == nil || f.file == "" {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &checkpointWriter{rt: rt, path: f.file, every: f.everyN, interval: f.intervalD, log: logger, lastWrite: time.Now(), cancel: cancel, done: make(chan struct{})}
	if w.last, err = existingCheckpoint(ctx, rt, f.file); err != nil {
		cancel()
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	poll := f.poll
	if poll <= 0 {
		poll = time.Second
	}
	if w.interval > 0 && w.interval < poll {
		poll = w.interval
	}
	logger.Info("writing signed audit checkpoints", "file", f.file, "every_envelopes", w.every, "interval", w.interval.String(), "origin", rt.CheckpointOrigin())
	go w.loop(ctx, poll)
	return func() {
		w.cancel()
		<-w.done
		w.write(context.Background(), true)
	}, nil
}

func (w *checkpointWriter) loop(ctx context.Context, poll time.Duration) {
	defer close(w.done)
	if w.every == 0 && w.interval == 0 {
		return // at shutdown only
	}
	every(ctx, poll, func() { w.write(ctx, false) })
}

// write writes a checkpoint when one is due (always when final, if the
// chain grew since the last).
func (w *checkpointWriter) write(ctx context.Context, final bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	seq, _, err := w.rt.Store().Head(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("checkpoint: read chain head", "err", err)
		}
		return
	}
	var done uint64
	if w.last != nil {
		done = w.last.Size
	}
	if seq == 0 || seq == done {
		return
	}
	due := final || (w.every > 0 && seq-done >= w.every) || (w.interval > 0 && time.Since(w.lastWrite) >= w.interval)
	if !due {
		return
	}
	msg, c, err := w.rt.SignCheckpoint(ctx, false, w.last)
	if err != nil {
		if ctx.Err() == nil {
			w.stopped = true
			w.log.Error("checkpoint: stopped writing checkpoints", "file", w.path, "err", err)
		}
		return
	}
	if err := checkpoint.WriteFile(w.path, msg, 0o644); err != nil {
		w.log.Warn("checkpoint: write", "err", err) // retried at the next poll
		return
	}
	w.last, w.lastWrite = &c, time.Now()
	w.log.Info("checkpoint written", "file", w.path, "seq", c.Size, "hash", c.Hash)
}
