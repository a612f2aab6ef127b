package tools

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Ensure an uploaded manifest asking for more than a server ceiling is
// refused at registration, naming the field, its value and the ceiling
// (issue 12, finding 6), and that one at the ceiling is accepted.
func TestManifestAboveCeilingRefused(t *testing.T) {
	ceil := Ceilings{CallMemoryMiB: 128, CallTimeout: time.Minute, StdoutBytes: 1 << 20, StderrBytes: 64 << 10, PoolSize: 8}
	r := NewRegistry(newHost(t, HostOptions{Ceilings: ceil}), NewMemoryStore(), RegistryOptions{})
	defaults := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	tests := []struct {
		name string
		r    *Registry
		edit func(*Manifest)
		want string // "" means accepted
	}{
		{name: "memory at the default ceiling", r: defaults, edit: func(m *Manifest) { m.Limits.MemoryMiB = 512 }},
		{name: "memory 4096 above the default ceiling", r: defaults, edit: func(m *Manifest) { m.Limits.MemoryMiB = 4096 },
			want: `limits.memory_mib 4096 is above the server's ceiling of 512`},
		{name: "timeout a day above the default ceiling", r: defaults, edit: func(m *Manifest) { m.Limits.TimeoutMS = 86_400_000 },
			want: `limits.timeout_ms 86400000 is above the server's ceiling of 300000`},
		{name: "stdout 1 GiB above the default ceiling", r: defaults, edit: func(m *Manifest) { m.Limits.StdoutBytes = 1 << 30 },
			want: `limits.stdout_bytes 1073741824 is above the server's ceiling of 16777216`},
		{name: "stderr 1 GiB above the default ceiling", r: defaults, edit: func(m *Manifest) { m.Limits.StderrBytes = 1 << 30 },
			want: `limits.stderr_bytes 1073741824 is above the server's ceiling of 1048576`},
		{name: "pool 256 above the default ceiling", r: defaults, edit: func(m *Manifest) { m.Isolation = IsolationPool; m.PoolSize = 256 },
			want: `pool_size 256 is above the server's ceiling of 16`},
		{name: "everything at the configured ceilings", r: r, edit: func(m *Manifest) {
			m.Limits = Limits{MemoryMiB: 128, TimeoutMS: 60_000, StdoutBytes: 1 << 20, StderrBytes: 64 << 10}
			m.Isolation, m.PoolSize = IsolationPool, 8
		}},
		{name: "memory above a configured ceiling", r: r, edit: func(m *Manifest) { m.Limits.MemoryMiB = 129 },
			want: `limits.memory_mib 129 is above the server's ceiling of 128`},
		{name: "timeout above a configured ceiling", r: r, edit: func(m *Manifest) { m.Limits.TimeoutMS = 60_001 },
			want: `limits.timeout_ms 60001 is above the server's ceiling of 60000`},
		{name: "stdout above a configured ceiling", r: r, edit: func(m *Manifest) { m.Limits.StdoutBytes = 1<<20 + 1 },
			want: `limits.stdout_bytes 1048577 is above the server's ceiling of 1048576`},
		{name: "stderr above a configured ceiling", r: r, edit: func(m *Manifest) { m.Limits.StderrBytes = 64<<10 + 1 },
			want: `limits.stderr_bytes 65537 is above the server's ceiling of 65536`},
		{name: "pool above a configured ceiling", r: r, edit: func(m *Manifest) { m.Isolation = IsolationPool; m.PoolSize = 9 },
			want: `pool_size 9 is above the server's ceiling of 8`},
	}
	mod := modules(t)["poll"]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(mod.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&m)
			_, err = tt.r.Register(context.Background(), m, mod.Wasm)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if want := `register tool "poll": manifest "poll": ` + tt.want; err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
			if !errors.Is(err, ErrAboveCeiling) || !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("errors.Is(%v, ErrAboveCeiling and ErrInvalidManifest) = false", err)
			}
		})
	}
}

// Ensure a version stored under generous ceilings runs clamped to the
// ceilings of a later host: memory, timeout, stdout and pool size.
func TestStoredManifestClampedToLowerCeiling(t *testing.T) {
	st := NewMemoryStore()
	high := NewRegistry(newHost(t, HostOptions{}), st, RegistryOptions{})
	register(t, high, "memtouch", func(m *Manifest) { m.Limits.MemoryMiB = 256 })
	register(t, high, "loop", func(m *Manifest) { m.Limits.TimeoutMS = 200_000 })
	register(t, high, "flood", func(m *Manifest) { m.Limits.StdoutBytes = 8 << 20 })
	register(t, high, "memhold", func(m *Manifest) { m.Isolation, m.PoolSize = IsolationPool, 16 })

	low := NewRegistry(newHost(t, HostOptions{Ceilings: Ceilings{CallMemoryMiB: 8, CallTimeout: 100 * time.Millisecond, StdoutBytes: 1000, PoolSize: 2}}), st, RegistryOptions{})
	ctx := context.Background()
	tests := []struct {
		tool   string
		want   string
		wantIs error
	}{
		{tool: "memtouch", want: `tool "memtouch": memory limit 8 MiB exceeded`, wantIs: ErrMemoryLimit},
		{tool: "loop", want: `tool "loop": timed out after 100ms`, wantIs: ErrTimeout},
		{tool: "flood", want: `tool "flood": stdout exceeded 1000 bytes`, wantIs: ErrOutputLimit},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			_, err := low.Call(ctx, tt.tool, CallRequest{})
			if err == nil || err.Error() != tt.want || !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
	tool, err := low.Resolve(ctx, "memhold")
	if err != nil {
		t.Fatal(err)
	}
	if got := cap(tool.pool.sem); got != 2 {
		t.Fatalf("pool size = %d, want the ceiling 2", got)
	}
	// A step's own timeout is capped too.
	if _, err := low.Call(ctx, "loop", CallRequest{Timeout: time.Hour}); err == nil || err.Error() != `tool "loop": timed out after 100ms` {
		t.Fatalf("step timeout above the ceiling: err = %v", err)
	}
}

// Ensure a module touching memory past its ceiling fails the call with
// the memory-limit error, the host keeps serving, and the budget holds
// nothing afterwards, whatever the ceiling (heap-sized or mapped).
func TestMemoryTouchFailsCleanly(t *testing.T) {
	h := newHost(t, HostOptions{})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "validate_amount", nil)
	for _, mib := range []int{1, 16, 128} {
		t.Run(fmt.Sprintf("%d MiB", mib), func(t *testing.T) {
			register(t, r, "memtouch", func(m *Manifest) { m.Limits.MemoryMiB = mib })
			_, err := r.Call(context.Background(), "memtouch", CallRequest{})
			if want := fmt.Sprintf(`tool "memtouch": memory limit %d MiB exceeded`, mib); err == nil || err.Error() != want || !errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
			// Only validate_amount's kept instance (reset.go) holds any.
			if n, kept := h.MemoryInUse(), keptHeld(h); n != kept {
				t.Fatalf("budget holds %d bytes after the call, kept instances %d", n, kept)
			}
			if _, err := r.Call(context.Background(), "validate_amount", CallRequest{Args: map[string]any{"amount": 1}}); err != nil {
				t.Fatalf("good call after: %v", err)
			}
		})
	}
}

// bigStartModule is (module (memory 128) (func (export "_start"))): a
// command that declares 8 MiB of memory and does nothing.
var bigStartModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // func 0 has type 0
	0x05, 0x04, 0x01, 0x00, 0x80, 0x01, // memory min 128 pages
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: no locals, end
}

// barrier is an HTTP server every memhold call waits on: it counts the
// requests that arrived and answers them all once release is closed.
type barrier struct {
	srv     *httptest.Server
	arrived chan struct{}
	release chan struct{}
	host    string
}

func newBarrier(t *testing.T) *barrier {
	b := &barrier{arrived: make(chan struct{}, 1024), release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.arrived <- struct{}{}
		<-b.release
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(b.srv.Close)
	t.Cleanup(b.open)
	u, _ := url.Parse(b.srv.URL)
	b.host = u.Host
	return b
}

func (b *barrier) open() {
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// Ensure the memory of calls in flight is bounded as a whole: with a
// 64 MiB budget, N concurrent calls that each hold 20 MiB (well within
// their own 32 MiB ceiling) until every call has arrived or failed, exactly
// three fit; the rest fail at once with the budget error, the three then
// succeed, and the budget is back to zero. Fresh and pooled instances.
func TestMemoryBudgetConcurrentCalls(t *testing.T) {
	const n = 12
	for _, isolation := range []string{IsolationFresh, IsolationPool} {
		t.Run(isolation, func(t *testing.T) {
			b := newBarrier(t)
			h := newHost(t, HostOptions{Ceilings: Ceilings{MemoryBudgetMiB: 64}, HTTPTimeout: time.Hour})
			r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
			register(t, r, "memhold", func(m *Manifest) {
				m.Limits = Limits{MemoryMiB: 32, TimeoutMS: 300_000}
				m.AllowedHosts = []string{b.host}
				if isolation == IsolationPool {
					m.Isolation, m.PoolSize = IsolationPool, 16
				}
			})
			big := Manifest{Name: "bigstart", Limits: Limits{MemoryMiB: 16}}
			if _, err := r.Register(context.Background(), big, bigStartModule); err != nil {
				t.Fatal(err)
			}
			tool, err := r.Resolve(context.Background(), "memhold")
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, n)
			for range n {
				go func() {
					_, err := tool.Call(context.Background(), CallRequest{Args: map[string]any{"url": b.srv.URL}})
					errs <- err
				}()
			}
			var arrived, failed int
			var got []error
			for arrived+failed < n {
				select {
				case <-b.arrived:
					arrived++
				case err := <-errs:
					if err == nil {
						t.Fatal("a call finished before the barrier opened")
					}
					got = append(got, err)
					failed++
				}
			}
			// With the budget held, a module whose declared memory does
			// not fit is refused at instantiation, before it runs.
			_, err = r.Call(context.Background(), "bigstart", CallRequest{})
			if !errors.Is(err, ErrBudget) || !strings.HasPrefix(err.Error(), `tool "bigstart": server memory budget of 64 MiB exhausted: `) {
				t.Errorf("instantiating 8 MiB with the budget full: err = %v, want the budget error", err)
			}
			b.open()
			for range arrived {
				if err := <-errs; err != nil {
					t.Errorf("a call that fitted the budget failed: %v", err)
				}
			}
			if arrived != 3 {
				t.Errorf("%d calls held 20 MiB at once under a 64 MiB budget, want 3", arrived)
			}
			// Every refusal is counted for the admission metrics.
			if got := h.Stats().BudgetRefusals; got < uint64(failed)+1 {
				t.Errorf("budget refusals counted = %d, want at least %d", got, failed+1)
			}
			for _, err := range got {
				if !errors.Is(err, ErrBudget) || !strings.HasPrefix(err.Error(), `tool "memhold": server memory budget of 64 MiB exhausted: `) {
					t.Errorf("err = %v, want the budget error", err)
				}
			}
			if isolation == IsolationPool {
				// Idle warm instances keep their memory, and its charge,
				// until they close...
				if held := h.MemoryInUse(); held < 3*20<<20 || held > 64<<20 {
					t.Errorf("idle pool holds %d bytes, want the 3 instances' memory", held)
				}
				// ... or until a call needs the room: then idle instances
				// are closed for it.
				register(t, r, "memhold", func(m *Manifest) {
					m.Name = "memhold_fresh"
					m.Limits = Limits{MemoryMiB: 32, TimeoutMS: 300_000}
					m.AllowedHosts = []string{b.host}
				})
				if _, err := r.Call(context.Background(), "memhold_fresh", CallRequest{Args: map[string]any{"url": b.srv.URL}}); err != nil {
					t.Fatalf("a fresh call with the budget held by idle instances: %v", err)
				}
				if held := h.MemoryInUse(); held > 2*21<<20 {
					t.Errorf("after reclaiming, the pool still holds %d bytes", held)
				}
				return
			}
			if held := h.MemoryInUse(); held != 0 {
				t.Errorf("budget holds %d bytes after every call ended", held)
			}
			if _, err := r.Call(context.Background(), "bigstart", CallRequest{}); err != nil {
				t.Errorf("bigstart with the budget free: %v", err)
			}
		})
	}
}

// Ensure the budget's accounting holds under contention (run with -race):
// many goroutines calling tools that grow to various sizes, fresh and
// pooled, some refused by their own ceiling, some by the budget; every
// error is one of those two, and nothing stays charged once the fresh
// calls end and the pool is closed.
func TestMemoryBudgetHammer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	h := newHost(t, HostOptions{Ceilings: Ceilings{MemoryBudgetMiB: 96}})
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "memtouch", func(m *Manifest) { m.Limits.MemoryMiB = 8 })
	register(t, r, "memtouch", func(m *Manifest) { m.Name = "memtouch_big"; m.Limits.MemoryMiB = 48 })
	register(t, r, "memhold", func(m *Manifest) { m.AllowedHosts = []string{u.Host}; m.Limits.MemoryMiB = 24 })
	register(t, r, "memhold", func(m *Manifest) {
		m.Name = "memhold_pooled"
		m.AllowedHosts = []string{u.Host}
		m.Limits.MemoryMiB = 24
		m.Isolation, m.PoolSize = IsolationPool, 2
	})
	register(t, r, "poll", nil)
	tools := []string{"memtouch", "memtouch_big", "memhold", "memhold_pooled", "poll"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[string]int{}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				name := tools[(g+i)%len(tools)]
				args := map[string]any{"url": srv.URL}
				if name == "poll" {
					args = map[string]any{"status": "SUCCESS"}
				}
				_, err := r.Call(context.Background(), name, CallRequest{Args: args})
				kind := "ok"
				switch {
				case err == nil:
				case errors.Is(err, ErrBudget):
					kind = "budget"
				case errors.Is(err, ErrMemoryLimit) && strings.HasPrefix(name, "memtouch"):
					kind = "ceiling"
				default:
					t.Errorf("%s: unexpected error %v", name, err)
				}
				if err == nil && strings.HasPrefix(name, "memtouch") {
					t.Errorf("%s succeeded", name)
				}
				mu.Lock()
				count[kind]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", count)
	pooled, err := r.Resolve(context.Background(), "memhold_pooled")
	if err != nil {
		t.Fatal(err)
	}
	pooled.pool.mu.Lock()
	idle := pooled.pool.idle
	pooled.pool.idle = nil
	pooled.pool.mu.Unlock()
	for _, w := range idle {
		w.close()
	}
	closeKept(t, r, "poll")
	if held := h.MemoryInUse(); held != 0 {
		t.Fatalf("budget holds %d bytes after every call ended and the pool and kept instances closed", held)
	}
}

// Ensure the budget refuses exactly what does not fit and gives back what
// it took.
func TestBudgetReserve(t *testing.T) {
	b := &budget{limit: 100}
	steps := []struct {
		reserve, release uint64
		ok               bool
		used             uint64
	}{
		{reserve: 60, ok: true, used: 60},
		{reserve: 41, ok: false, used: 60},
		{reserve: 40, ok: true, used: 100},
		{reserve: 1, ok: false, used: 100},
		{release: 100, used: 0},
		{reserve: 101, ok: false, used: 0},
		{reserve: 0, ok: true, used: 0},
	}
	for i, s := range steps {
		if s.release > 0 {
			b.release(s.release)
		} else if ok := b.reserve(s.reserve); ok != s.ok {
			t.Fatalf("step %d: reserve(%d) = %v, want %v", i, s.reserve, ok, s.ok)
		}
		if u := b.used.Load(); u != s.used {
			t.Fatalf("step %d: used = %d, want %d", i, u, s.used)
		}
	}
}

// Ensure zero fields take their documented defaults.
func TestDefaultCeilings(t *testing.T) {
	c := DefaultCeilings()
	if c.CallMemoryMiB != 512 || c.CallTimeout != 5*time.Minute || c.StdoutBytes != 16<<20 || c.StderrBytes != 1<<20 || c.PoolSize != 16 {
		t.Fatalf("defaults = %+v", c)
	}
	if b := c.MemoryBudgetMiB; b < minBudgetMiB || b > maxBudgetMiB {
		t.Fatalf("default budget %d MiB outside %d..%d", b, minBudgetMiB, maxBudgetMiB)
	}
	if got := (Ceilings{CallMemoryMiB: 7}).withDefaults(); got.CallMemoryMiB != 7 || got.PoolSize != 16 {
		t.Fatalf("a set field was overridden: %+v", got)
	}
}

// BenchmarkBudget measures what admission adds to a call: one reserve and
// one release, from every goroutine at once.
func BenchmarkBudget(b *testing.B) {
	bud := &budget{limit: 1 << 40}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !bud.reserve(64 << 10) {
				b.Error("refused")
				return
			}
			bud.release(64 << 10)
		}
	})
}

// Ensure closing the host releases what idle pooled instances hold.
func TestHostCloseReleasesIdlePools(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	h, err := NewHost(context.Background(), HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
	register(t, r, "memhold", func(m *Manifest) {
		m.AllowedHosts = []string{u.Host}
		m.Isolation, m.PoolSize = IsolationPool, 2
	})
	if _, err := r.Call(context.Background(), "memhold", CallRequest{Args: map[string]any{"url": srv.URL}}); err != nil {
		t.Fatal(err)
	}
	if held := h.MemoryInUse(); held < 20<<20 {
		t.Fatalf("the idle instance holds %d bytes, want its 20 MiB", held)
	}
	tool, err := r.Resolve(context.Background(), "memhold")
	if err != nil {
		t.Fatal(err)
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(tool.pool.idle[0].mem.region)))
	if rss := residentAt(t, addr); rss < 20<<10 {
		t.Fatalf("the idle instance's mapping holds %d KiB resident, want its 20 MiB", rss)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if held := h.MemoryInUse(); held != 0 {
		t.Fatalf("after Close the budget holds %d bytes", held)
	}
	if rss := residentAt(t, addr); rss > 1<<10 {
		t.Fatalf("after Close the idle instance's memory is still mapped, %d KiB resident", rss)
	}
}

// residentAt is the resident KiB of this process's mapping holding addr, 0
// when none does.
func residentAt(t *testing.T, addr uintptr) int {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= a && uint64(addr) < b
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
