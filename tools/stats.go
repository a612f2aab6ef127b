package tools

import "sync/atomic"

// HostStats are a host's counters since it was created, for the metrics an
// operator scrapes (runtime/telemetry). Each is one atomic add on the call
// path; reading them takes no lock.
type HostStats struct {
	// Instantiations counts guest instances created: one per fresh call
	// that found no kept instance to reset (Resets), one per pooled
	// instance started (not per call it then serves).
	Instantiations uint64
	// Resets counts fresh calls served by a kept instance of a resettable
	// tool, reset to its state after instantiation (no instantiation).
	Resets uint64
	// PoolHits counts calls of a pooled tool served by an idle warm
	// instance, with no instantiation.
	PoolHits uint64
	// PoolWaits counts calls that waited for a pool slot because every
	// instance of the tool's pool was busy (admission by pool size).
	PoolWaits uint64
	// BudgetRefusals counts reservations the server's memory budget
	// refused, each failing its call with ErrBudget (admission by memory).
	BudgetRefusals uint64
	// MemoryInUse is the guest memory the budget holds now (MemoryInUse).
	MemoryInUse uint64
	// Compilations counts modules handed to wazero's compiler (a cache
	// hit of wazero's own file cache counts too): one per module bytes
	// the host keeps, however many calls needed them at once.
	Compilations uint64
	// CallWaits counts calls that waited because the server's calls in
	// flight were all taken (Ceilings.CallsInFlight).
	CallWaits uint64
	// SessionCallWaits counts calls that waited because their session's
	// share of the calls in flight was taken
	// (Ceilings.CallsInFlightPerSession).
	SessionCallWaits uint64
}

// hostStats are the live counters behind HostStats.
type hostStats struct {
	instantiations, resets, poolHits, poolWaits, budgetRefusals, compilations, callWaits, sessionWaits atomic.Uint64
}

// Stats returns the host's counters now.
func (h *Host) Stats() HostStats {
	return HostStats{
		Instantiations:   h.stats.instantiations.Load(),
		Resets:           h.stats.resets.Load(),
		PoolHits:         h.stats.poolHits.Load(),
		PoolWaits:        h.stats.poolWaits.Load(),
		BudgetRefusals:   h.stats.budgetRefusals.Load(),
		MemoryInUse:      h.budget.used.Load(),
		Compilations:     h.stats.compilations.Load(),
		CallWaits:        h.stats.callWaits.Load(),
		SessionCallWaits: h.stats.sessionWaits.Load(),
	}
}
