#!/usr/bin/env bash
# The peer comparison: DBOS Transact Go (runtime/peers/dbos) and
# `nano-vm-mcp bench` run the same refund pipeline (BM-INT-01, and the
# 1,000-step long horizon, BM-INT-10) alternately, RUNS times each, on
# this machine; then the medians with min–max are printed.
#
#   runtime/peers/run.sh                  # 5 runs each, 5,000 items, concurrency 200
#   RUNS=3 ITEMS=2000 runtime/peers/run.sh
#
# DBOS runs on a throwaway PostgreSQL cluster (.ci/pg.sh: fsync and
# synchronous_commit on). nano-vm-mcp runs on bbolt (a fresh temporary file,
# fsync on) and, when its bench accepts a PostgreSQL address for --db, on
# the same cluster as DBOS. The cluster is stopped at the end unless it was
# already running.
#
# Settings (environment): RUNS (5), ITEMS (5000), CONCURRENCY (200),
# SCENARIOS (refund,long), DBOS_POOL (0: DBOS's default pool of 20),
# POSTGRES (auto: also bench nano-vm-mcp on PostgreSQL when it can; 0: don't),
# OUT (folder for the JSON reports; default a new temporary folder, kept).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

runs=${RUNS:-5}
items=${ITEMS:-5000}
conc=${CONCURRENCY:-200}
scenarios=${SCENARIOS:-refund,long}
pool=${DBOS_POOL:-0}
want_pg=${POSTGRES:-auto}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/nano-vm-mcp-peers.XXXXXX")}
mkdir -p "$out"

started=0
if ! .ci/pg.sh env >/dev/null 2>&1; then started=1; fi
eval "$(.ci/pg.sh start)"
cleanup() { if [ "$started" = 1 ]; then .ci/pg.sh stop || true; fi; }
trap cleanup EXIT
dsn=$NANO_VM_MCP_TEST_POSTGRES

echo "== building (go build; the peer is its own module)" >&2
bin=$out/bin
mkdir -p "$bin"
go build -o "$bin/nano-vm-mcp" ./cmd/nano-vm-mcp
(cd runtime/peers/dbos && go build -o "$bin/dbos-peer" .)

pg=0
if [ "$want_pg" != 0 ]; then
  # The bench selects PostgreSQL by address when this build can; a build
  # that cannot refuses it, and the comparison runs on bbolt alone.
  # (An older build takes --db as a file name: its help does not say
  # postgres, and the address is never passed to it.)
  # (The help is read whole first: grep -q exits at the first match, and
  # under pipefail the writer's SIGPIPE failed the test at random.)
  help=$("$bin/nano-vm-mcp" bench --help 2>&1 || true)
  if ! grep -qi postgres <<<"$help"; then
    echo "note: this build's bench takes --db as a bbolt file only; bbolt only" >&2
  elif "$bin/nano-vm-mcp" bench --scenario refund --items 10 --concurrency 2 --db "$dsn" --json >"$out/probe.json" 2>"$out/probe.err"; then
    pg=1
  else
    echo "note: nano-vm-mcp bench --db postgres://… failed ($(head -c 300 "$out/probe.err")); bbolt only" >&2
  fi
fi

echo "== load before: $(uptime)" >&2
for i in $(seq 1 "$runs"); do
  echo "== run $i/$runs: dbos" >&2
  "$bin/dbos-peer" --db "$dsn" --scenario "$scenarios" --items "$items" --concurrency "$conc" --pool "$pool" --json >"$out/dbos-$i.json"
  echo "== run $i/$runs: nano-vm-mcp on bbolt" >&2
  "$bin/nano-vm-mcp" bench --scenario "$scenarios" --items "$items" --concurrency "$conc" --json >"$out/nano-vm-mcp-bbolt-$i.json"
  if [ "$pg" = 1 ]; then
    echo "== run $i/$runs: nano-vm-mcp on PostgreSQL" >&2
    "$bin/nano-vm-mcp" bench --db "$dsn" --scenario "$scenarios" --items "$items" --concurrency "$conc" --json >"$out/nano-vm-mcp-postgres-$i.json"
  fi
done
echo "== load after: $(uptime)" >&2

files=("$out"/dbos-*.json "$out"/nano-vm-mcp-bbolt-*.json)
if [ "$pg" = 1 ]; then files+=("$out"/nano-vm-mcp-postgres-*.json); fi
echo
echo "peer comparison — $(date -u +%F), $(nproc) CPU(s), $(psql "$dsn" -Atc 'select version()' 2>/dev/null | cut -d, -f1 || echo PostgreSQL); runs $runs, items $items, concurrency $conc; reports in $out"
"$bin/dbos-peer" summarize "${files[@]}"
