package telemetry

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, as /metrics serves them.
const (
	MetricRuns                 = "nanovm_runs_total"
	MetricStepDuration         = "nanovm_step_duration_seconds"
	MetricToolCallDuration     = "nanovm_tool_call_duration_seconds"
	MetricCommitDuration       = "nanovm_store_commit_duration_seconds"
	MetricCommitBatch          = "nanovm_store_commit_batch_size"
	MetricInstantiations       = "nanovm_sandbox_instantiations_total"
	MetricPoolHits             = "nanovm_sandbox_pool_hits_total"
	MetricResets               = "nanovm_sandbox_resets_total"
	MetricPoolWaits            = "nanovm_sandbox_admission_waits_total"
	MetricBudgetRefusals       = "nanovm_sandbox_admission_refusals_total"
	MetricCallWaits            = "nanovm_sandbox_call_waits_total"
	MetricSessionCallWaits     = "nanovm_sandbox_session_call_waits_total"
	MetricSandboxMemory        = "nanovm_sandbox_memory_bytes"
	MetricRegistrationsRefused = "nanovm_tool_registrations_refused_total"
	MetricAuditChainLength     = "nanovm_audit_chain_length"
	// MetricMCPOperationDuration is the MCP semantic conventions'
	// mcp.server.operation.duration, in Prometheus' spelling.
	MetricMCPOperationDuration = "mcp_server_operation_duration_seconds"
)

// maxToolLabels bounds the distinct tool names the tool-call histogram
// keeps apart; calls of further tools are counted under "_other". Tools
// are registered by the operator and, when allowed, by uploads: an
// uploader must not be able to grow /metrics without bound.
const maxToolLabels = 256

// OtherLabel is the label value that collects what a bound cuts off.
const OtherLabel = "_other"

// Sources are what the metrics read when /metrics is scraped; a nil
// function leaves its metrics out.
type Sources struct {
	// Sandbox returns the tool host's counters.
	Sandbox func() SandboxStats
	// AuditChainLength returns the audit chain's length (its head's
	// sequence number); it may read the store.
	AuditChainLength func(ctx context.Context) (uint64, error)
}

// SandboxStats mirror tools.HostStats (this package does not import tools).
type SandboxStats struct {
	Instantiations, Resets, PoolHits, AdmissionWaits, AdmissionRefusals, CallWaits, SessionCallWaits, MemoryInUse uint64
}

// Metrics are the Prometheus metrics of one runtime, in a registry of
// their own. A nil *Metrics records nothing, so callers need not check.
// Every method is safe for concurrent use and, on a run's path, costs a
// few atomic operations.
type Metrics struct {
	reg *prometheus.Registry

	runs          *prometheus.CounterVec
	steps         *prometheus.HistogramVec
	toolCalls     *prometheus.HistogramVec
	commitLatency prometheus.Histogram
	commitBatch   prometheus.Histogram
	refused       *prometheus.CounterVec
	mcpOps        *prometheus.HistogramVec

	// stepObs caches the step histogram's children by type and status,
	// sparing the label hashing on every step.
	stepObs sync.Map // [2]string → prometheus.Observer
	// toolObs caches the tool-call histogram's children by tool and
	// outcome; tools counts the distinct tool labels given out.
	toolObs  sync.Map // [2]string → prometheus.Observer
	toolMu   sync.Mutex
	toolSeen map[string]bool
}

// Buckets of the duration histograms, in seconds. mcpBuckets are the MCP
// semantic conventions' advice for mcp.server.operation.duration.
var (
	stepBuckets  = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	mcpBuckets   = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// NewMetrics registers the metrics, with the Go runtime's and the
// process's collectors, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), toolSeen: map[string]bool{}}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRuns, Help: "Runs that ended or suspended, by status (success, failed, suspended, budget_exceeded, ...; interrupted when a run stopped resumable).",
	}, []string{"status"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricStepDuration, Help: "Duration of each recorded step, by step type and step status.", Buckets: stepBuckets,
	}, []string{"type", "status"})
	m.toolCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricToolCallDuration, Help: "Duration of each tool call (one attempt of a tool step), by tool and outcome (ok, error, denied).", Buckets: stepBuckets,
	}, []string{"tool", "outcome"})
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: MetricCommitDuration, Help: "Duration of each group commit of the store (its transactions and fsync).", Buckets: stepBuckets,
	})
	m.commitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: MetricCommitBatch, Help: "Writes that shared one group commit.", Buckets: batchBuckets,
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRegistrationsRefused, Help: "Tool registrations refused (policy, sandbox checks, ceilings), by who asked (upload, operator, bundled).",
	}, []string{"source"})
	m.mcpOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricMCPOperationDuration, Help: "MCP request duration as seen by the server (mcp.server.operation.duration).", Buckets: mcpBuckets,
	}, []string{"mcp_method_name", "gen_ai_tool_name", "error_type", "network_transport", "mcp_protocol_version"})
	m.reg.MustRegister(m.runs, m.steps, m.toolCalls, m.commitLatency, m.commitBatch, m.refused, m.mcpOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds the metrics read from src at scrape time, once the
// sources exist. A Metrics serves one runtime: a second Register of the
// same metrics is ignored.
func (m *Metrics) Register(src Sources) {
	if m == nil {
		return
	}
	if f := src.Sandbox; f != nil {
		counter := func(name, help string, get func(SandboxStats) uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(f())) })
		}
		m.register(
			counter(MetricInstantiations, "Sandbox instances created (one per fresh call that found no kept instance to reset, one per pooled instance started).", func(s SandboxStats) uint64 { return s.Instantiations }),
			counter(MetricResets, "Fresh calls served by a kept instance reset to its state after instantiation.", func(s SandboxStats) uint64 { return s.Resets }),
			counter(MetricPoolHits, "Calls of a pooled tool served by an idle warm instance.", func(s SandboxStats) uint64 { return s.PoolHits }),
			counter(MetricPoolWaits, "Calls that waited for a busy tool pool to free an instance.", func(s SandboxStats) uint64 { return s.AdmissionWaits }),
			counter(MetricBudgetRefusals, "Calls refused because the server's memory budget for live instances was exhausted.", func(s SandboxStats) uint64 { return s.AdmissionRefusals }),
			counter(MetricCallWaits, "Calls that waited because the server's calls in flight (--max-calls-in-flight) were all taken.", func(s SandboxStats) uint64 { return s.CallWaits }),
			counter(MetricSessionCallWaits, "Calls that waited because their MCP session's share of the calls in flight (--max-calls-in-flight-per-session) was taken.", func(s SandboxStats) uint64 { return s.SessionCallWaits }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricSandboxMemory, Help: "Guest memory held by live instances now (the memory budget's use)."},
				func() float64 { return float64(f().MemoryInUse) }),
		)
	}
	if f := src.AuditChainLength; f != nil {
		m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricAuditChainLength, Help: "Envelopes in the audit chain (the head's sequence number)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := f(ctx)
				if err != nil {
					return -1
				}
				return float64(n)
			}))
	}
}

// register adds cs, skipping any already registered.
func (m *Metrics) register(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = m.reg.Register(c)
	}
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Gatherer is the registry, for tests and for embedding the metrics in
// another registry.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Run counts a run that ended, suspended or was interrupted.
func (m *Metrics) Run(status string) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(status).Inc()
}

// Step observes one recorded step.
func (m *Metrics) Step(typ, status string, d time.Duration) {
	if m == nil {
		return
	}
	cachedObserver(&m.stepObs, [2]string{typ, status}, func() (prometheus.Observer, bool) {
		return m.steps.WithLabelValues(typ, status), true
	}).Observe(d.Seconds())
}

// ToolCall observes one tool call.
func (m *Metrics) ToolCall(tool, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	cachedObserver(&m.toolObs, [2]string{tool, outcome}, func() (prometheus.Observer, bool) {
		label := m.toolLabel(tool)
		// Only a tool with a label of its own is cached: OtherLabel's
		// tools are many.
		return m.toolCalls.WithLabelValues(label, outcome), label == tool
	}).Observe(d.Seconds())
}

// cachedObserver is the observer cache holds for key; on a miss it is
// mk's, stored in cache when mk says to keep it.
func cachedObserver(cache *sync.Map, key [2]string, mk func() (prometheus.Observer, bool)) prometheus.Observer {
	if o, ok := cache.Load(key); ok {
		return o.(prometheus.Observer)
	}
	o, keep := mk()
	if !keep {
		return o
	}
	v, _ := cache.LoadOrStore(key, o)
	return v.(prometheus.Observer)
}

// toolLabel is tool, or OtherLabel once maxToolLabels other tools have a
// label of their own.
func (m *Metrics) toolLabel(tool string) string {
	if tool == "" {
		return ""
	}
	m.toolMu.Lock()
	defer m.toolMu.Unlock()
	if !m.toolSeen[tool] {
		if len(m.toolSeen) >= maxToolLabels {
			return OtherLabel
		}
		m.toolSeen[tool] = true
	}
	return tool
}

// Commit observes one group commit of the store (store.Options.OnCommit).
func (m *Metrics) Commit(batch int, d time.Duration) {
	if m == nil {
		return
	}
	m.commitLatency.Observe(d.Seconds())
	m.commitBatch.Observe(float64(batch))
}

// RegistrationRefused counts a refused tool registration.
func (m *Metrics) RegistrationRefused(source string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(source).Inc()
}

// MCPOperation observes one MCP request. Every value must come from a
// bounded set (a known method, a listed tool): see the package invariants.
func (m *Metrics) MCPOperation(method, tool, errorType, transport, protocol string, d time.Duration) {
	if m == nil {
		return
	}
	m.mcpOps.WithLabelValues(method, m.toolLabel(tool), errorType, transport, protocol).Observe(d.Seconds())
}
