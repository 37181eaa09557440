#include "inbox/store_sql.hpp"

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

std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += '"';
        for (const char c : values[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

std::string bigint_array(const std::vector<long long>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += std::to_string(values[i]);
    }
    out += '}';
    return out;
}

std::string quote_literal(pqxx::connection_base& connection, std::string_view text) {
    std::string quoted;
    quoted.reserve(text.size() + 2);
    quoted += '\'';
    quoted += connection.esc(std::string(text));
    quoted += '\'';
    return quoted;
}

void prepare_inbox_statements(pqxx::connection_base& connection, std::string_view schema) {
    const std::string inbox = inbox_table(schema);
    // Keys and ids are bytea: single values arrive as binary parameters,
    // arrays as hex text (text_array cannot carry arbitrary bytes).
    connection.prepare(kClaimStatement,
                       fmt::format("INSERT INTO {} (handler, idempotency_key, body_sha256, message_id, correlation_id) "
                                   "VALUES ($1, $2, decode($3, 'hex'), $4, $5) "
                                   "ON CONFLICT (handler, idempotency_key) DO NOTHING RETURNING 1",
                                   inbox));
    connection.prepare(
        kFingerprintStatement,
        fmt::format("SELECT encode(body_sha256, 'hex') FROM {} WHERE handler = $1 AND idempotency_key = $2", inbox));
    connection.prepare(kClaimBatchStatement,
                       fmt::format("INSERT INTO {} (handler, idempotency_key, body_sha256, message_id, correlation_id) "
                                   "SELECT $1, decode(k, 'hex'), decode(f, 'hex'), decode(m, 'hex'), decode(c, 'hex') "
                                   "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(k, f, m, c) "
                                   // One lock order for every batch: no deadlocks between them.
                                   "ORDER BY k "
                                   "ON CONFLICT (handler, idempotency_key) DO NOTHING "
                                   "RETURNING encode(idempotency_key, 'hex')",
                                   inbox));
    connection.prepare(kFingerprintsStatement,
                       fmt::format("SELECT encode(idempotency_key, 'hex'), encode(body_sha256, 'hex') FROM {} "
                                   "WHERE handler = $1 AND idempotency_key = ANY("
                                   "ARRAY(SELECT decode(k, 'hex') FROM unnest($2::text[]) AS t(k)))",
                                   inbox));
    const std::string started = handling_started_table(schema);
    connection.prepare(kMarkStartedStatement,
                       fmt::format("INSERT INTO {0} (handler, delivery_sha256, message_id, deliveries) "
                                   "VALUES ($1, $2, $3, 1) "
                                   "ON CONFLICT (handler, delivery_sha256) DO UPDATE "
                                   "SET deliveries = {0}.deliveries + 1, last_started_at = now() RETURNING deliveries",
                                   started));
    connection.prepare(kClearStartedStatement,
                       fmt::format("DELETE FROM {} WHERE handler = $1 AND delivery_sha256 = $2", started));
}

std::string handling_started_table(std::string_view schema) { return quote_identifier(schema) + ".handling_started"; }

std::string inbox_table(std::string_view schema) { return quote_identifier(schema) + ".inbox"; }

}  // namespace idemq::detail
