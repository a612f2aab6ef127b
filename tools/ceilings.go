package tools

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Ceilings are the server-wide limits the operator sets (CLI flags and
// environment, never an MCP client). An uploaded manifest may ask for less
// than a ceiling, never more: Register refuses a manifest above one with
// ErrAboveCeiling, naming the field, its value and the ceiling. A version
// stored before a ceiling was lowered is clamped to the ceiling when it is
// resolved, so pinned versions and past runs still run, within the
// operator's current limits. Every zero field means its default.
type Ceilings struct {
	// CallMemoryMiB caps one call's linear memory (limits.memory_mib);
	// default 512.
	CallMemoryMiB int
	// CallTimeout caps one call's wall-clock time however it was set
	// (limits.timeout_ms, a step's timeout_seconds); default 5m.
	CallTimeout time.Duration
	// StdoutBytes caps a call's result (limits.stdout_bytes); default
	// 16 MiB.
	StdoutBytes int
	// StderrBytes caps a call's log (limits.stderr_bytes); default 1 MiB.
	StderrBytes int
	// PoolSize caps the warm instances of one pooled tool (pool_size);
	// default 16.
	PoolSize int
	// MemoryBudgetMiB bounds the guest memory (linear memory and tables)
	// of every instance alive at once, calls in flight and idle pooled
	// instances together. A call whose memory would take the total past
	// it fails with ErrBudget. Default DefaultMemoryBudgetMiB().
	MemoryBudgetMiB int
	// UploadBytes bounds the distinct module bytes uploads (register_tool)
	// may store in all: every version is kept for the audit and compiled
	// code stays in memory, so without it a client could fill the disk
	// and the memory with distinct uploads. Counted across restarts;
	// modules already stored and operator tools do not count. Default
	// 256 MiB.
	UploadBytes int
	// CallsInFlight caps the guest calls running at once, every tool and
	// isolation together (fresh, pooled, Extism); a call past it waits,
	// within its timeout, for one to end. Each call runs on a call stack
	// wazero grows in Go memory outside the budget, up to about
	// CallStackBound, so this is what bounds that memory. Default
	// DefaultCallsInFlight().
	CallsInFlight int
	// CallsInFlightPerSession caps the calls in flight of one MCP session
	// (see WithSession), so that one client keeping its calls busy leaves
	// the others some; a call past it waits, within its timeout, for one
	// of the session's own to end. Calls without a session (the CLI, runs
	// resumed at start, clients of the sessionless 2026-07-28 protocol,
	// stateless HTTP, where a client names its session itself) count
	// against CallsInFlight only. Default three quarters
	// of CallsInFlight, at least one; at most CallsInFlight.
	CallsInFlightPerSession int
}

// Defaults of Ceilings.
const (
	DefaultCallMemoryMiB = 512
	DefaultCallTimeout   = 5 * time.Minute
	DefaultStdoutBytes   = 16 << 20
	DefaultStderrBytes   = 1 << 20
	DefaultPoolSize      = 16
	DefaultUploadBytes   = 256 << 20
	// maxBudgetMiB is the default budget on a machine with at least twice
	// as much memory.
	maxBudgetMiB = 2048
	// minBudgetMiB keeps a tiny container able to run the default tools.
	minBudgetMiB = 256
	// CallStackBound is what one call can make the host hold in call
	// stack, at most: wazero's constant ceiling, measured (see
	// TestCallStackCeiling and .rationale/sandbox.md).
	CallStackBound = 192 << 20
	// minCallsInFlight and maxCallsInFlight bound the default of
	// CallsInFlight.
	minCallsInFlight = 4
	maxCallsInFlight = 64
)

// DefaultCallsInFlight is the default of Ceilings.CallsInFlight: as many
// calls as half the memory this process may use holds at CallStackBound
// each, from 4 to 64.
func DefaultCallsInFlight() int {
	total := availableMemory()
	if total == 0 {
		return maxCallsInFlight
	}
	return max(minCallsInFlight, min(maxCallsInFlight, int(total/2/CallStackBound)))
}

// DefaultCeilings returns every ceiling at its default.
func DefaultCeilings() Ceilings {
	return Ceilings{}.withDefaults()
}

// DefaultMemoryBudgetMiB is the default in-flight memory budget: 2 GiB, or
// half the memory this process may use when that is less (the smaller of
// physical memory and the cgroup limit, read on Linux), and never below
// 256 MiB.
func DefaultMemoryBudgetMiB() int {
	total := availableMemory()
	if total == 0 {
		return maxBudgetMiB
	}
	return max(minBudgetMiB, min(maxBudgetMiB, int(total>>20)/2))
}

// orDefault sets *p to d when *p is zero or negative: a ceiling left
// unset takes its default.
func orDefault[T ~int | ~int64 | ~uint64](p *T, d T) {
	if *p <= 0 {
		*p = d
	}
}

func (c Ceilings) withDefaults() Ceilings {
	orDefault(&c.CallMemoryMiB, DefaultCallMemoryMiB)
	orDefault(&c.CallTimeout, DefaultCallTimeout)
	orDefault(&c.StdoutBytes, DefaultStdoutBytes)
	orDefault(&c.StderrBytes, DefaultStderrBytes)
	orDefault(&c.PoolSize, DefaultPoolSize)
	orDefault(&c.UploadBytes, DefaultUploadBytes)
	// Measured only when unset.
	if c.MemoryBudgetMiB <= 0 {
		c.MemoryBudgetMiB = DefaultMemoryBudgetMiB()
	}
	if c.CallsInFlight <= 0 {
		c.CallsInFlight = DefaultCallsInFlight()
	}
	orDefault(&c.CallsInFlightPerSession, max(1, c.CallsInFlight*3/4))
	c.CallsInFlightPerSession = min(c.CallsInFlightPerSession, c.CallsInFlight)
	return c
}

// check refuses a manifest asking for more than a ceiling, naming the
// first field that does. Zero fields take defaults, which effective clamps.
func (c *Ceilings) check(m *Manifest) error {
	above := func(field string, v, ceiling any) error {
		return fmt.Errorf("manifest %q: %w", m.Name, detail(ErrAboveCeiling, "%s %v is above the server's ceiling of %v", field, v, ceiling))
	}
	l := m.Limits
	switch {
	case l.MemoryMiB > c.CallMemoryMiB:
		return above("limits.memory_mib", l.MemoryMiB, c.CallMemoryMiB)
	case int64(l.TimeoutMS) > c.CallTimeout.Milliseconds():
		return above("limits.timeout_ms", l.TimeoutMS, c.CallTimeout.Milliseconds())
	case l.StdoutBytes > c.StdoutBytes:
		return above("limits.stdout_bytes", l.StdoutBytes, c.StdoutBytes)
	case l.StderrBytes > c.StderrBytes:
		return above("limits.stderr_bytes", l.StderrBytes, c.StderrBytes)
	case m.PoolSize > c.PoolSize:
		return above("pool_size", m.PoolSize, c.PoolSize)
	}
	return nil
}

// limits are one tool's effective per-call limits: the manifest's (or
// their defaults), clamped to the ceilings.
type limits struct {
	memory   uint64 // bytes
	timeout  time.Duration
	stdout   int
	stderr   int
	poolSize int
	clamped  []string // the fields a ceiling lowered, for the log
}

// effective applies the defaults of m and clamps them to c.
func (c *Ceilings) effective(m *Manifest) limits {
	l := limits{memory: m.memoryBytes(), timeout: m.timeout(), stdout: m.stdoutCap(), stderr: m.stderrCap(), poolSize: m.poolSize()}
	clamp := func(field string, explicit bool, v *int, ceiling int) {
		if *v > ceiling {
			*v = ceiling
			if explicit {
				l.clamped = append(l.clamped, field)
			}
		}
	}
	if mem := uint64(c.CallMemoryMiB) << 20; l.memory > mem {
		l.memory = mem
		if m.Limits.MemoryMiB != 0 {
			l.clamped = append(l.clamped, "limits.memory_mib")
		}
	}
	if l.timeout > c.CallTimeout {
		l.timeout = c.CallTimeout
		if m.Limits.TimeoutMS != 0 {
			l.clamped = append(l.clamped, "limits.timeout_ms")
		}
	}
	clamp("limits.stdout_bytes", m.Limits.StdoutBytes != 0, &l.stdout, c.StdoutBytes)
	clamp("limits.stderr_bytes", m.Limits.StderrBytes != 0, &l.stderr, c.StderrBytes)
	clamp("pool_size", m.PoolSize != 0, &l.poolSize, c.PoolSize)
	return l
}

// budget is the host's in-flight memory budget. reserve and release are
// one compare-and-swap each: no lock on the call path.
type budget struct {
	limit uint64
	used  atomic.Uint64
}

// reserve takes n bytes, or reports false, taking nothing, when that would
// pass the limit.
func (b *budget) reserve(n uint64) bool {
	for {
		u := b.used.Load()
		if n > b.limit-min(u, b.limit) {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) release(n uint64) {
	if n != 0 {
		b.used.Add(^(n - 1))
	}
}

// reserve takes n bytes of the budget for an instance. When the budget is
// short it first closes idle pooled instances (reclaim), which hold their
// memory while they wait, so warm pools never starve calls in flight.
func (h *Host) reserve(n uint64) bool {
	if h.budget.reserve(n) {
		return true
	}
	h.reclaim(n)
	if h.budget.reserve(n) {
		return true
	}
	h.stats.budgetRefusals.Add(1)
	return false
}

// reclaim closes idle pooled instances, then idle kept instances of
// resettable tools (reset.go), in no particular order, until n bytes are
// free in the budget or none is left.
func (h *Host) reclaim(n uint64) {
	h.poolsMu.Lock()
	pools := slices.Clone(h.pools)
	keepers := slices.Clone(h.keepers)
	h.poolsMu.Unlock()
	short := func() bool { return h.budget.limit-min(h.budget.used.Load(), h.budget.limit) < n }
	for _, p := range pools {
		for short() {
			w := p.takeIdle()
			if w == nil {
				break
			}
			w.close()
		}
	}
	for _, t := range keepers {
		for short() {
			s := t.takeKept()
			if s == nil {
				break
			}
			s.closeKept(h)
		}
	}
}

// errBudget is the error of a reservation of n bytes that did not fit.
func (b *budget) err(n uint64) error {
	return detail(ErrBudget, "server memory budget of %s exhausted: %s held by instances alive now, this call needs %s more",
		mib(b.limit), mibUp(b.used.Load()), mibUp(n))
}

// mibUp prints b in MiB, rounded up, or in KiB below 1 MiB.
func mibUp(b uint64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", (b+1023)>>10)
	}
	return fmt.Sprintf("%d MiB", (b+(1<<20)-1)>>20)
}

// MemoryInUse reports the bytes of guest memory the budget holds now: the
// linear memories and tables of every live instance. A quiescent host
// (no call in flight, no pooled or kept instance) holds zero.
func (h *Host) MemoryInUse() uint64 { return h.budget.used.Load() }

// availableMemory is the smaller of physical memory and this process's
// cgroup (v2 or v1) memory limit, or 0 when neither can be read.
func availableMemory() uint64 {
	var total uint64
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) == 2 && f[1] == "kB" {
					if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						total = kb << 10
					}
				}
				break
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil && v > 0 && (total == 0 || v < total) {
			total = v
		}
		break
	}
	return total
}

// enterCall takes one of the host's calls in flight, waiting while all are
// taken until ctx ends; leaveCall(share) gives it back. A call made for a
// session (WithSession) first takes one of its session's share, returned
// as share, so it waits while that share is taken even when the server
// has calls to spare. The error says why the call did not start; the
// caller names the tool. (It returns no leave func: a func value
// returned escapes, an allocation per call.)
func (h *Host) enterCall(ctx context.Context) (share *sessionShare, err error) {
	id := sessionOf(ctx)
	if id == "" || h.sessions.per >= cap(h.calls) {
		return nil, h.takeCall(ctx)
	}
	sh := h.sessions.acquire(id)
	if err := h.takeShare(ctx, sh); err != nil {
		h.sessions.release(sh)
		return nil, err
	}
	if err := h.takeCall(ctx); err != nil {
		<-sh.tokens
		h.sessions.release(sh)
		return nil, err
	}
	return sh, nil
}

// takeCall takes one of the server's calls in flight, waiting until ctx
// ends.
func (h *Host) takeCall(ctx context.Context) error {
	if err := take(ctx, h.calls, &h.stats.callWaits); err != nil {
		return waitError(err, fmt.Sprintf("one of the server's %d calls in flight to end (--max-calls-in-flight)", cap(h.calls)))
	}
	return nil
}

// takeShare takes one of a session's calls in flight, waiting until ctx
// ends.
func (h *Host) takeShare(ctx context.Context, sh *sessionShare) error {
	if err := take(ctx, sh.tokens, &h.stats.sessionWaits); err != nil {
		return waitError(err, fmt.Sprintf("one of this session's %d calls in flight to end (--max-calls-in-flight-per-session)", h.sessions.per))
	}
	return nil
}

// take puts a token in tokens, counting a wait in waits when none is
// free at once, and returns ctx's error if it ends first.
func take(ctx context.Context, tokens chan struct{}, waits *atomic.Uint64) error {
	select {
	case tokens <- struct{}{}:
		return nil
	default:
	}
	waits.Add(1)
	select {
	case tokens <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitError says what a call waited for when its context ended: a
// deadline is the call's timeout (ErrTimeout).
func waitError(err error, what string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w waiting for %s", ErrTimeout, what)
	}
	return fmt.Errorf("cancelled waiting for %s: %w", what, err)
}

// leaveCall gives back the call in flight enterCall took, and share's
// token when it returned one.
func (h *Host) leaveCall(share *sessionShare) {
	<-h.calls
	if share != nil {
		<-share.tokens
		h.sessions.release(share)
	}
}
