#pragma once

#include <pqxx/connection>

#include <string>
#include <string_view>

namespace idemq::detail {

// The outbox's SQL, in one place.

// Prepared on every handler connection:
//   idemq_stage(ordering key, exchange, routing key, message id, properties
//               JSON, body, staged by) — bytea but for the JSON and the
//               handler name; an empty ordering key or handler is NULL.
inline constexpr const char* kStageStatement = "idemq_stage";

// The INSERT behind idemq_stage, for the outbox in `schema`.
[[nodiscard]] std::string stage_sql(std::string_view schema);

void prepare_outbox_statements(pqxx::connection_base& connection, std::string_view schema);

}  // namespace idemq::detail
