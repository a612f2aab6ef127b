#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks.
#
#   eval "$(.ci/pg.sh start)"   # start (or find running) and export the DSN
#   .ci/pg.sh env               # print the export lines of a running cluster
#   .ci/pg.sh stop              # stop it and delete its folder
#
# start installs Debian's postgresql with apt when no
# /usr/lib/postgresql/*/bin/initdb exists, runs initdb into a folder of its
# own (as the postgres user when run as root), and starts the server
# listening on 127.0.0.1 on a free port and on a Unix socket inside that
# folder, nowhere else. Authentication is trust for local connections only:
# the cluster is a test fixture, never a service. fsync and synchronous_commit
# keep PostgreSQL's defaults (on), so durable numbers measured on it are honest.
#
# stdout carries only shell export lines (for eval); everything else goes to
# stderr. Running start twice returns the same cluster; stop on a stopped or
# missing cluster does nothing. Both are safe to run concurrently from
# different checkouts: the folder is per checkout unless NANO_VM_MCP_PG_DIR
# names one.
#
# Exported:
#   NANO_VM_MCP_TEST_POSTGRES         postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
#   NANO_VM_MCP_TEST_POSTGRES_SOCKET  the same database over the Unix socket
#   NANO_VM_MCP_PG_DIR                the cluster's folder
#
# Settings (environment):
#   NANO_VM_MCP_PG_DIR              folder (default: ${TMPDIR:-/tmp}/nano-vm-mcp-pg-<checkout hash>)
#   NANO_VM_MCP_PG_MAX_CONNECTIONS  max_connections (default 400: several replicas and a
#                                   benchmark at concurrency 200 each hold a pool)
#   NANO_VM_MCP_PG_OPTIONS          more server options for a new start, e.g.
#                                   "-c shared_preload_libraries=pg_stat_statements"
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
hash=$(printf '%s' "$repo" | cksum | cut -d' ' -f1)
dir=${NANO_VM_MCP_PG_DIR:-${TMPDIR:-/tmp}/nano-vm-mcp-pg-$hash}
data=$dir/data
envfile=$dir/env
maxconn=${NANO_VM_MCP_PG_MAX_CONNECTIONS:-400}

log() { echo "pg.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# as_pg runs a command as the cluster's owner: postgres when we are root
# (PostgreSQL refuses to run as root), ourselves otherwise.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

find_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

ensure_installed() {
  bin=$(find_bin)
  if [ -n "$bin" ]; then return; fi
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root: run 'sudo apt-get install -y postgresql'"
  log "installing Debian's postgresql with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
  bin=$(find_bin)
  [ -n "$bin" ] || die "apt installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists"
}

# port_free: nothing accepts a connection on 127.0.0.1:$1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# server_pid prints the postmaster's pid when postmaster.pid names a live
# (not zombie) process running on our data folder. A postmaster killed with
# SIGKILL can stay a zombie where pid 1 does not reap, and pg_ctl status
# would call it running.
server_pid() {
  local pid state
  [ -f "$data/postmaster.pid" ] || return 1
  pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$data" || return 1
  echo "$pid"
}

# running: the server is up and answers on its socket.
running() {
  local port
  server_pid >/dev/null || return 1
  port=$(sed -n '4p' "$data/postmaster.pid")
  "$bin/pg_isready" -q -h "$dir" -p "$port" -U postgres -d postgres
}

print_env() {
  [ -f "$envfile" ] || die "no cluster in $dir (run: $0 start)"
  cat "$envfile"
}

write_env() {
  local port=$1 tmp
  tmp=$(mktemp "$dir/env.XXXXXX")
  {
    echo "export NANO_VM_MCP_TEST_POSTGRES='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
    echo "export NANO_VM_MCP_TEST_POSTGRES_SOCKET='postgres://postgres@/postgres?host=$dir&port=$port&sslmode=disable'"
    echo "export NANO_VM_MCP_PG_DIR='$dir'"
  } >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$envfile"
}

start() {
  ensure_installed
  # One start at a time per folder; a second waits and then finds it running.
  # The server must not inherit the lock's descriptor (9>&- below), or it
  # would hold the lock for its whole life.
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"
  flock 9
  if running && [ -f "$envfile" ]; then
    log "already running in $dir"
    print_env
    return
  fi
  mkdir -p "$dir"
  chmod 0755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as_pg test -w "$dir" || die "user postgres cannot write $dir (choose another NANO_VM_MCP_PG_DIR)"
  fi
  # A server that died (or hangs, not answering) leaves postmaster.pid behind.
  local stale
  if stale=$(server_pid); then
    log "a server ($stale) owns $data but does not answer; stopping it"
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 9>&- || kill -KILL "$stale" 2>/dev/null || true
  fi
  if ! server_pid >/dev/null; then rm -f "$data/postmaster.pid"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    log "initdb into $data ($("$bin/postgres" --version))"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  local port tries=0
  while :; do
    tries=$((tries + 1))
    [ "$tries" -le 20 ] || die "could not start PostgreSQL on a free port after 20 tries (log: $dir/server.log)"
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    # Listen on loopback and our own socket folder only; defaults otherwise
    # (fsync=on, synchronous_commit=on).
    if as_pg "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=$maxconn ${NANO_VM_MCP_PG_OPTIONS:-}" >/dev/null 2>&1 9>&-; then
      break
    fi
    log "start on port $port failed; trying another (tail of $dir/server.log:)"
    tail -n 3 "$dir/server.log" >&2 || true
  done
  write_env "$port"
  log "PostgreSQL running in $dir on 127.0.0.1:$port"
  print_env
}

stop() {
  bin=$(find_bin)
  [ -d "$dir" ] || { log "no cluster in $dir"; return; }
  exec 9>"$dir.lock"
  flock 9
  local pid
  if [ -n "$bin" ] && pid=$(server_pid); then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 9>&- \
      || as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 9>&- \
      || kill -KILL "$pid" 2>/dev/null || true
    if server_pid >/dev/null; then die "the server ($pid) in $dir does not stop (log: $dir/server.log)"; fi
    log "stopped the cluster in $dir"
  fi
  rm -rf "$dir"
  rm -f "$dir.lock"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) bin=$(find_bin); [ -n "$bin" ] && running || die "no cluster running in $dir (run: $0 start)"; print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
