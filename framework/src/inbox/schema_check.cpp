#include "inbox/schema_check.hpp"

#include <idemq/errors.hpp>
#include <idemq/migration.hpp>

#include <fmt/format.h>
#include <pqxx/nontransaction>

#include "common/config_text.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"
#include "inbox/store_sql.hpp"

namespace idemq::detail {

std::unique_ptr<pqxx::connection> open_startup_check_connection(const std::string& database_url) {
    try {
        return open_database(database_url, "idemq startup check");
    } catch (const pqxx::broken_connection& e) {
        throw Error(
            fmt::format("cannot connect to Postgres at {}: {}", redact_url(database_url), first_line(e.what())));
    }
}

void check_schema(const std::string& database_url, const std::string& schema_name) {
    const std::unique_ptr<pqxx::connection> connection = open_startup_check_connection(database_url);
    pqxx::nontransaction tx(*connection);
    // The worker's SQL is written for the newest framework migration.
    const int wanted = framework_migrations().back().version;
    const std::string schema = quote_identifier(schema_name);
    const auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", schema + ".schema_migrations");
    const int applied =
        exists[0][0].as<bool>()
            ? tx.exec_params(
                    fmt::format("SELECT coalesce(max(version), 0) FROM {}.schema_migrations WHERE component = $1",
                                schema),
                    "idemq")[0][0]
                  .as<int>()
            : 0;
    if (applied < wanted) {
        throw Error(
            fmt::format("idemq's tables in schema {} are missing or out of date in {} (at version {}, this "
                        "worker needs {}): run the migrate command first",
                        schema, redact_url(database_url), applied, wanted));
    }
}

}  // namespace idemq::detail
