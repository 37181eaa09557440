# shellcheck shell=bash
# scripts/lib/rabbitmq.sh -- the private RabbitMQ node of this checkout: one
# epmd and one node, run as $RMQ_USER, all state in $RMQ_DIR.  Sourced by
# scripts/services after common.sh and services_init.

readonly RMQ_DIR="$STATE/rabbitmq"
readonly RMQ_LOG="$RMQ_DIR/log/rabbit.log"
readonly NODENAME="idemq-$HASH@localhost"

# Environment for every RabbitMQ program (server and CLI).  Passed explicitly
# with `env -i` so neither the caller's environment nor
# /etc/rabbitmq/rabbitmq-env.conf leak in.
RMQ_ENV=(
  "PATH=$RMQ_BIN:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
  "HOME=$RMQ_DIR"
  "LANG=C.UTF-8"
  "LC_ALL=C.UTF-8"
  "RABBITMQ_NODENAME=$NODENAME"
  "RABBITMQ_DIST_PORT=$DIST_PORT"
  "ERL_EPMD_PORT=$EPMD_PORT"
  "RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf"
  "RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf"
  "RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config"
  "RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins"
  "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia"
  "RABBITMQ_LOG_BASE=$RMQ_DIR/log"
  "RABBITMQ_LOGS=$RMQ_LOG"
  "RABBITMQ_PID_FILE=$RMQ_DIR/rabbitmq.pid"
  "ERL_CRASH_DUMP=$RMQ_DIR/log/erl_crash.dump"
  # Never let the server or the CLI spawn an epmd on their own: we start (and
  # later kill) exactly one private epmd.  Keep distribution on loopback.
  "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
  "RABBITMQ_CTL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
)
readonly RMQ_ENV

# rmq_run PROGRAM ARGS...: run a RabbitMQ program as the RabbitMQ user.
rmq_run() {
  local program=$1
  shift
  if [[ $RMQ_USER != "$(id -un)" ]]; then
    # The caller's cwd may not be accessible to the rabbitmq user.
    (cd "$RMQ_DIR" && run_as "$RMQ_USER" env -i "${RMQ_ENV[@]}" "$RMQ_BIN/$program" "$@")
  else
    run_as "$RMQ_USER" env -i "${RMQ_ENV[@]}" "$RMQ_BIN/$program" "$@"
  fi
}

# rmq_cli PROGRAM ARGS...: `ctl` and `diagnostics` against the private node.
rmq_cli() {
  [[ -d $RMQ_DIR ]] || die "RabbitMQ was never started here; run '$PROG start' first"
  rmq_run "$@"
}

# rmq_exec_server: become the RabbitMQ server in the foreground (the end of
# the chain rmq_start launches; see there).
rmq_exec_server() {
  exec 9>&-
  if [[ $RMQ_USER != "$(id -un)" ]]; then
    exec setpriv --reuid="$RMQ_USER" --regid="$(id -g "$RMQ_USER")" --init-groups -- \
      env -i "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server"
  fi
  exec env -i "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server"
}

# ---------------------------------------------------------------------------
# epmd

epmd_running() {
  epmd -port "$EPMD_PORT" -names >/dev/null 2>&1
}

epmd_pids() {
  pgrep -f "(^|/)epmd -daemon -port $EPMD_PORT -address 127\.0\.0\.1\$" 2>/dev/null || true
}

# epmd_gone [TERM_AFTER]: no epmd of ours is left (a condition for
# wait_until).  From TERM_AFTER (microseconds since the epoch) on, SIGTERM the
# ones that are.
epmd_gone() {
  local pids
  pids=$(epmd_pids)
  [[ -z $pids ]] && ! epmd_running && return 0
  if [[ -n $pids ]] && ((${EPOCHREALTIME//[!0-9]/} >= ${1:-0})); then
    # shellcheck disable=SC2086 # pid list
    kill -TERM $pids 2>/dev/null || true
  fi
  return 1
}

epmd_start() {
  epmd_running && return 0
  (cd "$RMQ_DIR" && run_as "$RMQ_USER" epmd -daemon -port "$EPMD_PORT" -address 127.0.0.1 </dev/null >/dev/null 2>&1) ||
    die "could not start epmd on port $EPMD_PORT"
  wait_until 5 "epmd on port $EPMD_PORT" epmd_running || die "epmd did not come up on port $EPMD_PORT"
}

# Ask epmd to exit; SIGTERM it when it is still there after a second.
epmd_stop() {
  if epmd_running; then
    epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
  fi
  local term_after=$((${EPOCHREALTIME//[!0-9]/} + 1000000))
  wait_until 5 "epmd on port $EPMD_PORT to exit" epmd_gone "$term_after" || true
}

# ---------------------------------------------------------------------------
# the node

# Is PID the beam.smp of this checkout's node?  Its command line carries
# "-home <repo>/.services/rabbitmq" (from HOME), which is unique per checkout
# (the node name itself is not on the command line). A rabbitmqctl run (every
# `ctl` call, a test's vhost setup) is a beam.smp with the same -home: only
# the server boots the rabbit application ("-s rabbit boot"), and the CLI
# runs an escript. Mistaking one for the other made a restart wait for a
# "running" node that was never started.
is_our_beam() {
  pid_alive "$1" || return 1
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == beam.smp ]] || return 1
  local args
  args=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  grep -qxF -- "$RMQ_DIR" <<<"$args" || return 1
  grep -qxF -- rabbit <<<"$args" && ! grep -qxF -- escript <<<"$args"
}

rmq_pid() {
  local pid
  if [[ -f $RMQ_DIR/rabbitmq.pid ]]; then
    pid=$(tr -dc '0-9' <"$RMQ_DIR/rabbitmq.pid")
    if is_our_beam "$pid"; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  # The pid file is written a little after the VM starts; look for it.
  for pid in $(pgrep -x beam.smp 2>/dev/null || true); do
    if is_our_beam "$pid"; then
      printf '%s\n' "$pid"
      return 0
    fi
  done
  return 1
}

rmq_running() { rmq_pid >/dev/null; }

rmq_up() { rmq_running && port_open "$AMQP_PORT"; }

rmq_prepare() {
  tls_prepare
  ensure_dir "$RMQ_DIR" "$RMQ_USER"
  local tmp
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# generated by scripts/services on every start -- do not edit
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
# TLS beside the plain listener: TLS 1.2 and 1.3 only, and a client
# certificate from the test CA is required (mutual TLS); EXTERNAL logs a
# client in as the common name of its certificate.
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $RMQ_DIR/tls/ca.pem
ssl_options.certfile = $RMQ_DIR/tls/server.pem
ssl_options.keyfile = $RMQ_DIR/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
ssl_cert_login_from = common_name
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
EOF
  install -m 0644 "$tmp" "$RMQ_DIR/rabbitmq.conf"
  printf '[rabbitmq_auth_mechanism_ssl].\n' >"$tmp"
  install -m 0644 "$tmp" "$RMQ_DIR/enabled_plugins"
  : >"$tmp"
  install -m 0644 "$tmp" "$RMQ_DIR/rabbitmq-env.conf"
  rm -f "$tmp"
  if [[ ! -s $RMQ_DIR/.erlang.cookie ]]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' >"$RMQ_DIR/.erlang.cookie")
    chmod 0400 "$RMQ_DIR/.erlang.cookie"
  fi
  if ((EUID == 0)); then
    chown "$RMQ_USER:$(id -gn "$RMQ_USER")" "$RMQ_DIR"/{rabbitmq.conf,enabled_plugins,rabbitmq-env.conf,.erlang.cookie}
  fi
  run_as "$RMQ_USER" mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$RMQ_DIR/tls"
  install -m 0644 "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$RMQ_DIR/tls/"
  tls_install_key server "$RMQ_USER" "$RMQ_DIR/tls/server.key"
}

# rmq_listening LAUNCHER OUT: the node listens on the AMQP port (a condition
# for wait_until).  Exits the script when the node died during startup.
rmq_listening() {
  local launcher=$1 out=$2
  if ! pid_alive "$launcher" && ! rmq_running; then
    log "RabbitMQ exited during startup" >&2
    tail_log "$out" "$RMQ_LOG"
    exit 1
  fi
  rmq_running && port_open "$AMQP_PORT"
}

# The RabbitMQ application has fully booted: rabbitmqctl waits for it, for
# the time wait_until has left.
rmq_booted() {
  rmq_run rabbitmqctl -q await_startup --timeout "$WAIT_REMAINING" >/dev/null 2>&1
}

# rmq_wait_ready [SECONDS]: bounded check through the CLI that the RabbitMQ
# application has fully booted.
rmq_wait_ready() {
  local secs=${1:-$TIMEOUT}
  ((secs >= 0)) || secs=0
  wait_until "$secs" "RabbitMQ node $NODENAME to finish booting" rmq_booted
}

rmq_start() {
  if rmq_running; then
    if ! rmq_wait_ready; then
      tail_log "$RMQ_LOG"
      die "RabbitMQ node $NODENAME is running but did not finish booting within ${TIMEOUT}s; try '$PROG rabbitmq restart'"
    fi
    log "RabbitMQ already running (node $NODENAME, amqp port $AMQP_PORT)"
    return 0
  fi
  if port_open "$AMQP_PORT"; then
    die "port $AMQP_PORT (AMQP) is already in use by another process; set IDEMQ_SERVICES_PORT_BASE"
  fi
  if port_open "$DIST_PORT"; then
    die "port $DIST_PORT (Erlang distribution) is already in use; set IDEMQ_SERVICES_PORT_BASE"
  fi
  rmq_prepare
  epmd_start
  rm -f "$RMQ_DIR/rabbitmq.pid"
  log "starting RabbitMQ node $NODENAME (amqp 127.0.0.1:$AMQP_PORT) ..."
  local out="$RMQ_DIR/log/server-stdout.log"
  printf -- '--- %s starting\n' "$(date '+%F %T')" >>"$out"
  # Detached: own session, no terminal, output to a log file.  The chain
  # setsid -> scripts/services __run_rmq_server (rmq_exec_server) -> setpriv
  # -> env -> rabbitmq-server exec()s all the way, so $! is the
  # rabbitmq-server wrapper (parent of beam).
  (cd "$RMQ_DIR" && exec setsid -w "$SCRIPT_DIR/services" __run_rmq_server) </dev/null >>"$out" 2>&1 &
  local launcher=$!
  local deadline=$((SECONDS + TIMEOUT))
  # The AMQP listener comes up first; then confirm the application finished
  # booting, within the same ${TIMEOUT}s.
  if ! wait_until "$TIMEOUT" "RabbitMQ to listen on 127.0.0.1:$AMQP_PORT" rmq_listening "$launcher" "$out" ||
    ! rmq_wait_ready $((deadline - SECONDS)); then
    log "RabbitMQ did not become ready within ${TIMEOUT}s" >&2
    tail_log "$out" "$RMQ_LOG"
    rmq_kill
    exit 1
  fi
  rmq_provision
  log "RabbitMQ ready"
}

rmq_provision() {
  local marker="$RMQ_DIR/mnesia/.idemq-provisioned"
  [[ -f $marker ]] && return 0
  log "creating RabbitMQ user '$APP_USER'"
  local users
  users=$(rmq_run rabbitmqctl -q list_users)
  if ! awk '{print $1}' <<<"$users" | grep -qx "$APP_USER"; then
    rmq_run rabbitmqctl -q add_user "$APP_USER" "$APP_PASSWORD" >/dev/null
  fi
  rmq_run rabbitmqctl -q set_user_tags "$APP_USER" administrator >/dev/null
  rmq_run rabbitmqctl -q set_permissions -p / "$APP_USER" '.*' '.*' '.*' >/dev/null
  run_as "$RMQ_USER" touch "$marker"
}

# Stop the node gracefully; fall back to signals after 10 s.
rmq_stop() {
  local pid
  if ! pid=$(rmq_pid); then
    return 0
  fi
  log "stopping RabbitMQ (pid $pid) ..."
  rmq_run rabbitmqctl -q shutdown --timeout "$TIMEOUT" >/dev/null 2>&1 || true
  wait_until 10 "RabbitMQ (pid $pid) to exit" pids_gone "$pid" || rmq_kill
  rm -f "$RMQ_DIR/rabbitmq.pid"
  return 0
}

# SIGTERM every VM of this checkout's node; SIGKILL what is left after 8 s.
rmq_kill() {
  local pids=() pid
  for pid in $(pgrep -x beam.smp 2>/dev/null || true); do
    is_our_beam "$pid" && pids+=("$pid")
  done
  ((${#pids[@]} > 0)) || return 0
  warn "killing RabbitMQ VM (pid ${pids[*]})"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait_until 8 "the RabbitMQ VM to exit on SIGTERM" pids_gone "${pids[@]}" && return 0
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait_until 2 "the RabbitMQ VM (pid ${pids[*]}) to exit on SIGKILL" pids_gone "${pids[@]}" || true
}
