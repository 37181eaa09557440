#include "outbox/outbox_sql.hpp"

#include <fmt/format.h>

#include "inbox/store_sql.hpp"

namespace idemq::detail {

std::string stage_sql(std::string_view schema) {
    return fmt::format(
        "INSERT INTO {}.outbox (ordering_key, exchange, routing_key, message_id, properties, body, staged_by) "
        "VALUES (NULLIF($1, ''::bytea), $2, $3, $4, $5::jsonb, $6, NULLIF($7, ''))",
        quote_identifier(schema));
}

void prepare_outbox_statements(pqxx::connection_base& connection, std::string_view schema) {
    connection.prepare(kStageStatement, stage_sql(schema));
}

}  // namespace idemq::detail
