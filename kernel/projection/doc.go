// Package projection decides what each audience may see of a run's state: a
// prompt (LLM), the stored trace and audit envelopes (Trace), or a tool
// (Tool). A projection is a deep copy of JSON data with some of it removed,
// redacted or rewritten; the input is never modified.
//
// # Rules
//
//   - LLM: top-level keys beginning with "__" (governance metadata: envelopes,
//     hashes, policy, retry counters) are dropped, except "__webhook__", whose
//     value becomes [Redacted]. A field whose name looks secret (see
//     [IsSecretName]) becomes [Redacted], at any depth. Inside every string
//     and object name, e-mail addresses, phone numbers and Luhn-valid payment
//     card numbers are replaced by [RedactedEmail], [RedactedPhone] and
//     [RedactedCard], and vault references by their public form ([PublicRef]).
//   - Trace: vault references, whole or embedded in text, are replaced by their
//     public form; nothing else changes.
//   - Tool: ProjectState keeps only the top-level keys granted to the tool;
//     vault references stay references (the tool resolves them through a
//     granted host function) except erased ones, which become [Tombstone].
//
// # Invariants
//
//   - Project and ProjectState never modify their input and never panic on
//     JSON data; their output shares no map or slice with the input.
//   - The result is deterministic: when two object names redact to the same
//     name, the one that was not rewritten wins, else the smallest original
//     name, whatever the map iteration order.
//   - Trace projection is idempotent, and its output never contains a
//     "vault://secret/" reference.
//
// # Caveats
//
// Redaction of personal data is pattern based and errs towards redacting:
// numbers written as JSON numbers are not inspected, an order number of 10–15
// digits reads as a phone number, a 13–19 digit identifier that happens to
// pass the Luhn check reads as a card, and a secret under an innocent name
// (e.g. "value") is only caught if it is a vault reference. Keep secrets in the
// vault; redaction is the second line of defence, not the first.
package projection
