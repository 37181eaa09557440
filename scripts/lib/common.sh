# shellcheck shell=bash disable=SC2034 # (the settings here are used by the files that source this one)
# scripts/lib/common.sh -- what scripts/services, scripts/test, scripts/demo and
# scripts/bench share: the checkout's paths, logging, one poll loop (wait_until),
# pid and port probes, and (after services_init) the private services' state
# directory, ports and users.  Sourced, never run; the caller sets -euo
# pipefail and may set PROG (the name in messages) before sourcing.

: "${PROG:=scripts/${0##*/}}"
readonly PROG
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
readonly ROOT
readonly SCRIPT_DIR="$ROOT/scripts"

readonly TIMEOUT="${IDEMQ_SERVICES_TIMEOUT:-120}"
readonly POLL_INTERVAL=0.1

readonly APP_USER=idemq
readonly APP_PASSWORD=idemq-secret
readonly APP_DB=idemq

readonly PG_BIN=/usr/lib/postgresql/15/bin
readonly RMQ_BIN=/usr/lib/rabbitmq/bin

# ---------------------------------------------------------------------------
# logging

log() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

tail_log() {
  local f
  for f in "$@"; do
    [[ -f $f ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2 || true
  done
}

# ---------------------------------------------------------------------------
# waiting

# wait_until SECONDS DESCRIPTION COMMAND [ARGS...]: run COMMAND every
# $POLL_INTERVAL seconds until it succeeds (return 0) or SECONDS have passed
# (warn "timed out after SECONDS waiting for DESCRIPTION", return 1).  COMMAND
# runs at least once, in this shell (it may `exit`, to give up early), and
# finds the whole seconds left, at least 1, in WAIT_REMAINING (for commands
# that wait on their own, like `rabbitmqctl await_startup --timeout`).
WAIT_REMAINING=0
wait_until() {
  local seconds=$1 what=$2
  shift 2
  [[ $seconds =~ ^[0-9]+$ ]] || die "wait_until: timeout '$seconds' is not a number of seconds"
  local now=${EPOCHREALTIME//[!0-9]/}
  local deadline=$((now + seconds * 1000000))
  while :; do
    WAIT_REMAINING=$(((deadline - now + 999999) / 1000000))
    ((WAIT_REMAINING >= 1)) || WAIT_REMAINING=1
    if "$@"; then return 0; fi
    now=${EPOCHREALTIME//[!0-9]/}
    ((now < deadline)) || break
    sleep "$POLL_INTERVAL"
    now=${EPOCHREALTIME//[!0-9]/}
  done
  warn "timed out after ${seconds}s waiting for $what"
  return 1
}

# ---------------------------------------------------------------------------
# processes and ports

# Does something accept TCP connections on 127.0.0.1:PORT?
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() {
  [[ -n ${1:-} && -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# pids_gone PID...: none of the PIDs is alive (a condition for wait_until).
pids_gone() {
  local pid
  for pid in "$@"; do
    if pid_alive "$pid"; then return 1; fi
  done
  return 0
}

# run_as USER CMD...: run CMD as USER (no-op switch if already that user).
# fd 9 (the state lock) is never passed on, so servers do not hold the lock.
run_as() {
  local user=$1
  shift
  if ((EUID == 0)) && [[ $user != root ]]; then
    setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@" 9>&-
  else
    "$@" 9>&-
  fi
}

# ---------------------------------------------------------------------------
# the private services of this checkout (scripts/services and its libs)

# State lives in <repo>/.services.  When root runs the servers as the
# 'rabbitmq' and 'postgres' users, those users must be able to reach it; a
# checkout under a private directory (CI clones into /root, say) gets its
# state in /var/tmp instead, still one directory per checkout.
state_dir() {
  if ((EUID == 0)); then
    local p="" part parts
    IFS=/ read -r -a parts <<<"${ROOT#/}"
    for part in "${parts[@]}"; do
      p="$p/$part"
      if [[ $(stat -c %A "$p") != *[xt] ]]; then
        printf '/var/tmp/idemq-services-%s\n' "$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
        return
      fi
    done
  fi
  printf '%s/.services\n' "$ROOT"
}

# Port base: explicit override > the base recorded by a running `start` > hash.
resolve_port_base() {
  local base
  if [[ -n ${IDEMQ_SERVICES_PORT_BASE:-} ]]; then
    base=$IDEMQ_SERVICES_PORT_BASE
    if ! [[ $base =~ ^[0-9]+$ ]] || ((base < 1024 || base > 65530)); then
      die "IDEMQ_SERVICES_PORT_BASE must be a number in 1024..65530 (got '$base')"
    fi
  elif [[ -f $PORT_FILE ]]; then
    base=$(<"$PORT_FILE")
    [[ $base =~ ^[0-9]+$ ]] || die "corrupt $PORT_FILE; remove it"
  else
    base=$((20000 + (HASH % 2000) * 5))
    # Never overlap the system RabbitMQ distribution port (25672).
    if ((base <= 25672 && 25672 <= base + 4)); then base=$((base + 5)); fi
  fi
  printf '%s\n' "$base"
}

# services_init: the state directory, ports and OS users of this checkout's
# services (HASH STATE PORT_FILE PORT_BASE PG_PORT AMQP_PORT DIST_PORT
# EPMD_PORT AMQPS_PORT RMQ_USER PG_USER).  Call once, before sourcing rabbitmq.sh and
# postgres.sh.
services_init() {
  # Stable per-checkout hash (CRC of the physical repo path).
  HASH=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
  STATE=$(state_dir)
  PORT_FILE="$STATE/port-base"
  readonly HASH STATE PORT_FILE
  PORT_BASE=$(resolve_port_base)
  readonly PORT_BASE
  readonly PG_PORT=$PORT_BASE
  readonly AMQP_PORT=$((PORT_BASE + 1))
  readonly DIST_PORT=$((PORT_BASE + 2))
  readonly EPMD_PORT=$((PORT_BASE + 3))
  # RabbitMQ's TLS listener (Postgres takes TLS on its one port).
  readonly AMQPS_PORT=$((PORT_BASE + 4))
  # Which OS users run the servers.  PostgreSQL refuses to run as root and the
  # Debian RabbitMQ scripts expect the rabbitmq user, so as root we use the
  # system users created by the packages; otherwise everything runs as the
  # invoking user.
  if ((EUID == 0)); then
    RMQ_USER=rabbitmq
    PG_USER=postgres
  else
    RMQ_USER=$(id -un)
    PG_USER=$RMQ_USER
  fi
  readonly RMQ_USER PG_USER
}

require_tools() {
  local missing=()
  local f
  for f in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/postgres" "$PG_BIN/psql" "$PG_BIN/pg_isready" \
    "$RMQ_BIN/rabbitmq-server" "$RMQ_BIN/rabbitmqctl"; do
    [[ -x $f ]] || missing+=("$f")
  done
  command -v epmd >/dev/null 2>&1 || missing+=(epmd)
  command -v setpriv >/dev/null 2>&1 || missing+=(setpriv)
  command -v flock >/dev/null 2>&1 || missing+=(flock)
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} -- run scripts/bootstrap first"
  if ((EUID == 0)); then
    id -u rabbitmq >/dev/null 2>&1 || die "system user 'rabbitmq' missing -- run scripts/bootstrap"
    id -u postgres >/dev/null 2>&1 || die "system user 'postgres' missing -- run scripts/bootstrap"
  fi
}

# Serialize start/stop/restart of this checkout's services.
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w "$TIMEOUT" 9 || die "timed out waiting for the lock $STATE/.lock"
}

# ensure_dir DIR USER: create DIR owned by USER, check that USER can use it.
ensure_dir() {
  local dir=$1 user=$2
  mkdir -p "$dir"
  if [[ $(stat -c %U "$dir") != "$user" ]]; then
    if ((EUID == 0)); then
      chown -R "$user:$(id -gn "$user")" "$dir"
    else
      die "$dir is owned by $(stat -c %U "$dir"), not $user (created by another user?); remove $STATE and retry"
    fi
  fi
  if ! run_as "$user" test -w "$dir" -a -x "$dir"; then
    local p="" part parts
    IFS=/ read -r -a parts <<<"${dir#/}"
    for part in "${parts[@]}"; do
      p="$p/$part"
      run_as "$user" test -x "$p" ||
        die "user '$user' cannot traverse $p (mode $(stat -c %A "$p")): move the checkout somewhere accessible, or chmod o+x $p"
    done
    die "user '$user' cannot write to $dir"
  fi
}

# ---------------------------------------------------------------------------
# for scripts that use the services (scripts/test, scripts/demo, scripts/bench)

# services_up: start this checkout's services unless they are up, and export
# what `scripts/services env` prints.  SERVICES_STARTED=1 when this call
# started them; services_down stops them again, and only then.
SERVICES_STARTED=0
services_up() {
  if ! "$SCRIPT_DIR/services" status >/dev/null 2>&1; then
    "$SCRIPT_DIR/services" start
    SERVICES_STARTED=1
  fi
  eval "$("$SCRIPT_DIR/services" env)"
}

services_down() {
  if [[ -n $SERVICES_STARTING ]]; then wait "$SERVICES_STARTING" 2>/dev/null || true; fi
  if ((SERVICES_STARTED)); then "$SCRIPT_DIR/services" stop || true; fi
}

# services_up_async, then services_up_wait: services_up with the servers'
# start (most of it RabbitMQ booting) overlapping the caller's work.
SERVICES_STARTING=""
SERVICES_START_LOG=""
services_up_async() {
  if "$SCRIPT_DIR/services" status >/dev/null 2>&1; then return 0; fi
  SERVICES_STARTED=1
  SERVICES_START_LOG=$(mktemp /tmp/idemq-services-start.XXXXXX)
  "$SCRIPT_DIR/services" start >"$SERVICES_START_LOG" 2>&1 &
  SERVICES_STARTING=$!
}

services_up_wait() {
  if [[ -n $SERVICES_STARTING ]]; then
    local pid=$SERVICES_STARTING
    SERVICES_STARTING=""
    if ! wait "$pid"; then
      cat "$SERVICES_START_LOG" >&2
      die "the services did not start"
    fi
    cat "$SERVICES_START_LOG"
    rm -f "$SERVICES_START_LOG"
  fi
  eval "$("$SCRIPT_DIR/services" env)"
}
