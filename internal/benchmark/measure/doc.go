// Package measure reads what a benchmark reports of the machine: this
// process's CPU time (getrusage), a local PostgreSQL server's CPU (from
// /proc), nearest-rank latency percentiles, and a bounded list of broken
// invariants. It imports the standard library only, so that the DBOS peer
// (runtime/peers/dbos, a module of its own) measures with the code
// `nano-vm-mcp bench` measures with, and the two reports compare.
package measure
