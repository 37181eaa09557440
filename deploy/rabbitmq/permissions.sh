#!/usr/bin/env bash
# deploy/rabbitmq/permissions.sh -- RabbitMQ permissions for idemq's two users:
# a worker that touches only its own handlers' queues and exchanges, and the
# DLQ tools that read (and republish from) those handlers' dead-letter queues.
# The regexes are built from the names the worker declares
# (framework/src/amqp/topology.cpp); docs/security.md says why each is there.
#
# usage: deploy/rabbitmq/permissions.sh worker|operator USER [options]
#   -p, --vhost VHOST         the vhost (default /)
#   --queue Q                 a handler's queue (repeatable; its DLQ is Q.dlq)
#   --exchange E              an exchange a handler's queue is bound to (repeatable)
#   --publish-to E            worker only: an exchange the outbox relay publishes to
#                             (repeatable; rows naming any other one are refused and parked)
#   --publish-to-any          worker only: the relay may publish to every exchange
#   --dry-run                 print the rabbitmqctl command, change nothing
# The users must exist (rabbitmqctl add_user; the password is yours to set).
# RABBITMQCTL names the command to run (default rabbitmqctl), e.g.
#   RABBITMQCTL="scripts/services ctl" deploy/rabbitmq/permissions.sh worker payments-worker \
#     --queue payments.charge --exchange payments --queue payments.notify \
#     --exchange payments.events --publish-to payments.events
set -euo pipefail

die() {
  printf 'permissions.sh: %s\n' "$*" >&2
  exit 2
}

# A name as a regex that matches it and nothing else (every regex
# metacharacter escaped: one sed expression, where bash's ${//} needs one per character).
# shellcheck disable=SC2001
literal() { sed -e 's/[]\\.^$*+?(){}|[]/\\&/g' <<<"$1"; }

# ^(a|b|c)$ of the given regex alternatives; ^$ (nothing) when there are none.
anchored() {
  local IFS='|'
  if (($# == 0)); then printf '^$'; else printf '^(%s)$' "$*"; fi
}

(($# >= 2)) || die "usage: $0 worker|operator USER [options] (see the comment at the top)"
role=$1 user=$2
shift 2
[[ $role == worker || $role == operator ]] || die "the role is 'worker' or 'operator', not '$role'"
vhost=/ dry_run=0 publish_any=0
queues=() exchanges=() publish_to=()
while (($# > 0)); do
  case $1 in
    -p | --vhost) vhost=${2:?"$1 needs a value"} && shift ;;
    --queue) queues+=("${2:?"$1 needs a value"}") && shift ;;
    --exchange) exchanges+=("${2:?"$1 needs a value"}") && shift ;;
    --publish-to) publish_to+=("${2:?"$1 needs a value"}") && shift ;;
    --publish-to-any) publish_any=1 ;;
    --dry-run) dry_run=1 ;;
    *) die "unknown option '$1'" ;;
  esac
  shift
done
((${#queues[@]} > 0)) || die "name at least one --queue"

# The retry tiers (idemq.delay.<ms>ms: an exchange and a queue each) are
# shared by every worker of the vhost.
tiers='idemq\.delay\.[0-9]+ms'
# The default exchange, as permissions name it: dead-lettering publishes
# through it (routing key <queue>.dlq), and so does `dlq replay --to-queue`.
default_exchange='amq\.default'

own_queues=() dead_letter_queues=() bound_exchanges=() relay_targets=()
for q in "${queues[@]}"; do
  own_queues+=("$(literal "$q")")
  dead_letter_queues+=("$(literal "$q.dlq")")
done
for e in ${exchanges[@]+"${exchanges[@]}"}; do bound_exchanges+=("$(literal "$e")"); done
for e in ${publish_to[@]+"${publish_to[@]}"}; do relay_targets+=("$(literal "$e")"); done

if [[ $role == worker ]]; then
  # configure: declaring its queues, their DLQs, the exchanges it binds to and the tiers.
  configure=$(anchored "${own_queues[@]}" "${dead_letter_queues[@]}" ${bound_exchanges[@]+"${bound_exchanges[@]}"} "$tiers")
  # write: binding its queues and the tier queues (a bind writes to the queue),
  # publishing retries to the tiers, dead letters through the default exchange,
  # and the outbox relay's rows to their exchanges.
  if ((publish_any)); then
    write='.*'
  else
    write=$(anchored "${own_queues[@]}" "$tiers" "$default_exchange" ${relay_targets[@]+"${relay_targets[@]}"})
  fi
  # read: consuming its queues; binding reads the exchange bound to.
  read=$(anchored "${own_queues[@]}" ${bound_exchanges[@]+"${bound_exchanges[@]}"} "$tiers")
else
  ((${#publish_to[@]} == 0 && publish_any == 0)) || die "--publish-to is for the worker"
  # The DLQ tools declare nothing.
  configure='^$'
  # replay publishes to where a message was first published (the handlers'
  # exchanges) or, with --to-queue, through the default exchange.
  write=$(anchored ${bound_exchanges[@]+"${bound_exchanges[@]}"} "$default_exchange")
  # list, show, export, replay and purge consume the DLQs.
  read=$(anchored "${dead_letter_queues[@]}")
fi

read -r -a ctl <<<"${RABBITMQCTL:-rabbitmqctl}"
command=("${ctl[@]}" set_permissions -p "$vhost" "$user" "$configure" "$write" "$read")
if ((dry_run)); then
  printf '%s' "${command[0]}"
  printf " '%s'" "${command[@]:1}"
  printf '\n'
else
  "${command[@]}"
fi
