// Package store persists nano-vm-mcp's durable facts in one bbolt file
// (package store/postgres keeps them in PostgreSQL, for replicas):
// programs, executions and their steps, the audit envelope chain, idempotency
// keys, tool modules and the secret vault. The runtime consumes it through the
// Store interface, which *DB implements; package storetest is the conformance
// suite any other backend must pass; store/postgres passes it. What
// backends share (envelope sealing, the record check of VerifyChain,
// validation) is exported in backend.go and verify_source.go; leases for
// stores replicas share are in lease.go.
//
// # Invariants
//
//   - A write returns only once committed: with the default options it has
//     been fsynced. Concurrent writes share commits (group commit), so
//     durable throughput grows with concurrency.
//   - CommitStep writes a step, its run record and its envelope in one
//     transaction: after a crash either all three exist or none does.
//   - Envelopes form one global chain numbered 1, 2, 3… without gaps; each
//     holds the previous one's hash. They are never updated or deleted, not
//     even with the program or run they describe. VerifyChain reports
//     the first broken link.
//   - The store never sees a secret's value: Vault encrypts it (AES-256-GCM)
//     before it reaches the store.
//   - A bad file (not bbolt, truncated, damaged, or from a newer schema) is an
//     error from Open, never a panic and never silently rewritten.
//   - One record that cannot be decoded never fails a listing: Runs
//     skips it and names it in RunPage.Skipped; reading it alone is
//     ErrCorrupt naming it.
//
// # Caveats
//
//   - bbolt frees pages copy-on-write: an erased secret's ciphertext can stay
//     in a free page of the file until the page is reused. Without the vault
//     key it is unreadable; see .rationale/storage.md.
//   - One process at a time: the file is locked (ErrLocked otherwise).
//   - The chain detects edits, deletions and reordering, but an attacker who
//     can write the file could rewrite the whole tail consistently; publish
//     VerifyReport.HeadHash elsewhere to anchor it.
package store
