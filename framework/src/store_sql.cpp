#include "store_sql.hpp"

#include <fmt/format.h>

namespace idemq::detail {

std::string quote_identifier(std::string_view name) {
    std::string quoted = "\"";
    for (const char c : name) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    quoted += '"';
    return quoted;
}

void prepare_inbox_statements(pqxx::connection_base& connection, std::string_view schema) {
    const std::string inbox = inbox_table(schema);
    connection.prepare(kClaimStatement,
                       fmt::format("INSERT INTO {} (handler, idempotency_key, body_sha256, message_id, correlation_id) "
                                   "VALUES ($1, $2, decode($3, 'hex'), $4, $5) "
                                   "ON CONFLICT (handler, idempotency_key) DO NOTHING RETURNING 1",
                                   inbox));
    connection.prepare(kFingerprintStatement,
                       fmt::format("SELECT encode(body_sha256, 'hex') FROM {} WHERE handler = $1 AND idempotency_key = $2",
                                   inbox));
    const std::string started = quote_identifier(schema) + ".handling_started";
    connection.prepare(kMarkStartedStatement,
                       fmt::format("INSERT INTO {0} (handler, idempotency_key, deliveries) VALUES ($1, $2, 1) "
                                   "ON CONFLICT (handler, idempotency_key) DO UPDATE "
                                   "SET deliveries = {0}.deliveries + 1, last_started_at = now() RETURNING deliveries",
                                   started));
    connection.prepare(kClearStartedStatement,
                       fmt::format("DELETE FROM {} WHERE handler = $1 AND idempotency_key = $2", started));
}

std::string inbox_table(std::string_view schema) { return quote_identifier(schema) + ".inbox"; }

}  // namespace idemq::detail
