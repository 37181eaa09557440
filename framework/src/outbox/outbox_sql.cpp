#include "outbox/outbox_sql.hpp"

#include <fmt/format.h>

#include "inbox/store_sql.hpp"

namespace idemq::detail {

std::string stage_sql(std::string_view schema, bool notify) {
    const std::string insert = fmt::format(
        "INSERT INTO {}.outbox (ordering_key, exchange, routing_key, message_id, properties, body, staged_by) "
        "VALUES (NULLIF($1, ''::bytea), $2, $3, $4, $5, $6, NULLIF($7, ''))",
        quote_identifier(schema));
    // One statement, so asking costs no round trip.
    return notify ? fmt::format("WITH staged AS ({} RETURNING 1) SELECT pg_notify('{}', '') FROM staged", insert,
                                kOutboxChannel)
                  : insert;
}

void prepare_outbox_statements(pqxx::connection_base& connection, std::string_view schema, bool notify) {
    connection.prepare(kStageStatement, stage_sql(schema, notify));
}

void prepare_relay_statements(pqxx::connection_base& connection, std::string_view schema) {
    const std::string s = quote_identifier(schema);
    connection.prepare(kRelayTakeStatement,
                       fmt::format("UPDATE {}.outbox_lease SET "
                                   "epoch = CASE WHEN owner = $1 AND expires_at > now() THEN epoch ELSE epoch + 1 END, "
                                   "owner = $1, expires_at = now() + make_interval(secs => $2) "
                                   "WHERE name = 'relay' AND (owner = $1 OR owner IS NULL OR expires_at <= now()) "
                                   "RETURNING epoch",
                                   s));
    connection.prepare(
        kRelayGiveUpStatement,
        fmt::format("UPDATE {}.outbox_lease SET expires_at = now() WHERE name = 'relay' AND owner = $1", s));
    // The head of a lane is its lowest id among committed rows, parked or
    // waiting ones included: they hold their lane, never the others.
    connection.prepare(
        kRelayBatchStatement,
        fmt::format("SELECT id, exchange, routing_key, properties, body, attempts, ordering_key IS NOT NULL "
                    "FROM {0}.outbox o WHERE parked_at IS NULL AND next_attempt_at <= now() "
                    "AND (ordering_key IS NULL OR id = "
                    "(SELECT min(h.id) FROM {0}.outbox h WHERE h.ordering_key = o.ordering_key)) "
                    "AND id NOT IN (SELECT unnest($2::bigint[])) "
                    "ORDER BY id LIMIT $1",
                    s));
    connection.prepare(kRelayDoneStatement,
                       fmt::format("WITH holder AS (SELECT 1 FROM {0}.outbox_lease "
                                   "WHERE name = 'relay' AND owner = $2 AND epoch = $3 FOR SHARE), "
                                   "gone AS (DELETE FROM {0}.outbox WHERE id = ANY($1::bigint[]) "
                                   "AND EXISTS (SELECT 1 FROM holder) RETURNING *) "
                                   "INSERT INTO {0}.outbox_published (id, ordering_key, exchange, routing_key, "
                                   "message_id, staged_by, staged_at, attempts, relay, epoch) "
                                   "SELECT id, ordering_key, exchange, routing_key, message_id, staged_by, staged_at, "
                                   "attempts + 1, $2, $3 FROM gone "
                                   "RETURNING extract(epoch FROM clock_timestamp() - staged_at)::float8",
                                   s));
    connection.prepare(kRelayFailedStatement,
                       fmt::format("UPDATE {}.outbox SET attempts = attempts + 1, last_error = $2, "
                                   "next_attempt_at = now() + make_interval(secs => $3), "
                                   "parked_at = CASE WHEN attempts + 1 >= $4 THEN now() END "
                                   "WHERE id = $1 RETURNING parked_at IS NOT NULL",
                                   s));
    connection.prepare(kRelayBacklogStatement,
                       fmt::format("SELECT count(*) FILTER (WHERE parked_at IS NULL), "
                                   "coalesce(extract(epoch FROM now() - min(staged_at) FILTER "
                                   "(WHERE parked_at IS NULL)), 0)::float8, "
                                   "count(*) FILTER (WHERE parked_at IS NOT NULL) FROM {}.outbox",
                                   s));
}

namespace {

// The rows an operator command names: these ids, or every parked row.
constexpr const char* kSelected = "(CASE WHEN $1::bigint[] IS NULL THEN parked_at IS NOT NULL ELSE id = ANY($1) END)";

// A row's state as idemqctl shows it, and a timestamp as ISO 8601 UTC.
constexpr const char* kRowState =
    "CASE WHEN parked_at IS NOT NULL THEN 'parked' WHEN next_attempt_at > now() THEN 'waiting' ELSE 'pending' END";
std::string utc(std::string_view column) {
    return fmt::format("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", column);
}

}  // namespace

std::string outbox_list_sql(std::string_view schema) {
    return fmt::format(
        "SELECT id, {}, attempts, {}, encode(exchange, 'hex'), encode(routing_key, 'hex'), encode(message_id, 'hex'), "
        "coalesce(last_error, '') FROM {}.outbox WHERE (NOT $1 OR parked_at IS NOT NULL) ORDER BY id LIMIT $2",
        kRowState, utc("staged_at"), quote_identifier(schema));
}

std::string outbox_trace_pending_sql(std::string_view schema) {
    return fmt::format(
        "SELECT id, {}, attempts, {}, exchange, routing_key, coalesce(last_error, '') FROM {}.outbox "
        "WHERE message_id = $1 ORDER BY id",
        kRowState, utc("staged_at"), quote_identifier(schema));
}

std::string outbox_trace_published_sql(std::string_view schema) {
    return fmt::format(
        "SELECT id, {}, relay, epoch, attempts, exchange, routing_key FROM {}.outbox_published "
        "WHERE message_id = $1 ORDER BY id",
        utc("published_at"), quote_identifier(schema));
}

std::string outbox_retry_sql(std::string_view schema) {
    return fmt::format(
        "UPDATE {}.outbox SET parked_at = NULL, next_attempt_at = now(), "
        "attempts = CASE WHEN parked_at IS NOT NULL THEN 0 ELSE attempts END "
        "WHERE {} AND (parked_at IS NOT NULL OR next_attempt_at > now()) RETURNING id",
        quote_identifier(schema), kSelected);
}

std::string outbox_purge_sql(std::string_view schema) {
    return fmt::format("DELETE FROM {}.outbox WHERE {} AND parked_at IS NOT NULL RETURNING id",
                       quote_identifier(schema), kSelected);
}

}  // namespace idemq::detail
