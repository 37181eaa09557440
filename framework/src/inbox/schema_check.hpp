#pragma once

#include <pqxx/connection>

#include <memory>
#include <string>

namespace idemq::detail {

// Refuses to start a worker against a database without idemq's tables, or
// with tables older than this binary's SQL needs: throws Error telling the
// operator to run the migrate command (or that Postgres cannot be reached).
void check_schema(const std::string& database_url, const std::string& schema);

// The connection the start-up checks run on. Throws Error naming the
// (redacted) URL when Postgres cannot be reached.
[[nodiscard]] std::unique_ptr<pqxx::connection> open_startup_check_connection(const std::string& database_url);

}  // namespace idemq::detail
