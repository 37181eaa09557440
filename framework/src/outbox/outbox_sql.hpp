#pragma once

#include <pqxx/connection>

#include <string>
#include <string_view>

namespace idemq::detail {

// The outbox's SQL, in one place.

// Prepared on every handler connection:
//   idemq_stage(ordering key, exchange, routing key, message id, properties
//               JSON, body, staged by) — bytea but for the JSON text and the
//               handler name; an empty ordering key or handler is NULL.
inline constexpr const char* kStageStatement = "idemq_stage";

// The channel a staging transaction NOTIFYs, when asked to, and the relay
// holding the lease LISTENs on: it wakes that relay in another process at
// once instead of at its next poll. Postgres delivers one notification per
// transaction however many rows it staged (identical ones are folded).
inline constexpr const char* kOutboxChannel = "idemq_outbox";

// The INSERT behind idemq_stage, for the outbox in `schema`; with `notify`,
// it also NOTIFYs kOutboxChannel.
[[nodiscard]] std::string stage_sql(std::string_view schema, bool notify = false);

void prepare_outbox_statements(pqxx::connection_base& connection, std::string_view schema, bool notify);

// The relay's statements, prepared on its own connection:
//   idemq_relay_take(owner, lease seconds) -> the epoch when `owner` holds
//       the lease now (taking it when free or expired: a new epoch), none
//       when another relay holds it.
//   idemq_relay_give_up(owner) -> lets the lease expire now.
//   idemq_relay_batch(limit, ids in flight bigint[]) -> (id, exchange,
//       routing key, properties JSON, body, attempts, ordered) of committed
//       rows due now and not in flight, by id: every row without an ordering
//       key, and the first row of each ordering key (a key whose first row
//       is in flight has none).
//   idemq_relay_done(ids bigint[], owner, epoch) -> moves confirmed rows to
//       outbox_published, only while `owner` holds the lease in `epoch`;
//       per row moved, the seconds from its staging to now (the database's
//       clock, so no clock skew between hosts enters).
//   idemq_relay_failed(id, error, retry after seconds, attempt limit) ->
//       counts a failed publish; parks the row at the limit; parked or not.
//   idemq_relay_backlog() -> (rows not parked, seconds since the oldest was
//       staged, rows parked).
inline constexpr const char* kRelayTakeStatement = "idemq_relay_take";
inline constexpr const char* kRelayGiveUpStatement = "idemq_relay_give_up";
inline constexpr const char* kRelayBatchStatement = "idemq_relay_batch";
inline constexpr const char* kRelayDoneStatement = "idemq_relay_done";
inline constexpr const char* kRelayFailedStatement = "idemq_relay_failed";
inline constexpr const char* kRelayBacklogStatement = "idemq_relay_backlog";
void prepare_relay_statements(pqxx::connection_base& connection, std::string_view schema);

// The operator's statements (idemqctl outbox). $1 is the selection: a
// bigint[] of row ids, or NULL for every parked row.
//   list ($1 only parked?, $2 limit) -> id, state (pending|waiting|parked),
//       attempts, staged_at, exchange, routing key, message id (all bytea as
//       hex), last error; oldest first.
//   retry -> the ids of the rows made due now (a parked row unparked, its
//       attempts reset); only parked or waiting rows.
//   purge -> the ids deleted; only parked rows are ever deleted.
[[nodiscard]] std::string outbox_list_sql(std::string_view schema);
// idemqctl trace: the outbox rows with message id $1 (bytea).
//   pending -> id, state (pending|waiting|parked), attempts, staged_at,
//       exchange, routing key (bytea), last error.
//   published -> id, published_at, relay, epoch, attempts, exchange,
//       routing key (bytea).
[[nodiscard]] std::string outbox_trace_pending_sql(std::string_view schema);
[[nodiscard]] std::string outbox_trace_published_sql(std::string_view schema);
[[nodiscard]] std::string outbox_retry_sql(std::string_view schema);
[[nodiscard]] std::string outbox_purge_sql(std::string_view schema);

}  // namespace idemq::detail
