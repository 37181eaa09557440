#include <idemq/errors.hpp>
#include <idemq/migration.hpp>

#include <fmt/format.h>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <map>

#include "common/config_text.hpp"
#include "common/fingerprint.hpp"
#include "common/log.hpp"
#include "inbox/database_session.hpp"
#include "inbox/migration_sql.hpp"
#include "inbox/store_sql.hpp"

namespace idemq {

std::string detail::expand_schema(std::string_view sql, std::string_view quoted_schema) {
    static constexpr std::string_view kPlaceholder = "${schema}";
    std::string out;
    out.reserve(sql.size());
    for (;;) {
        const auto found = sql.find(kPlaceholder);
        out.append(sql.substr(0, found));
        if (found == std::string_view::npos) return out;
        out.append(quoted_schema);
        sql.remove_prefix(found + kPlaceholder.size());
    }
}

namespace {

void check_order(const std::vector<Migration>& migrations) {
    std::map<std::string, int> last;
    for (const auto& m : migrations) {
        int& previous = last[m.component];
        if (m.version <= previous) {
            throw Error(fmt::format("migrations of '{}' are out of order at {} ({})", m.component, m.version, m.name));
        }
        previous = m.version;
    }
}

}  // namespace

std::size_t apply_migrations(const std::string& database_url, std::string_view schema_name,
                             const std::vector<Migration>& migrations) {
    check_order(migrations);
    const std::string schema(schema_name);
    const std::string quoted = detail::quote_identifier(schema);
    std::unique_ptr<pqxx::connection> connection;
    try {
        connection = detail::open_database(database_url, "idemq migrate");
    } catch (const pqxx::broken_connection& e) {
        throw Error(fmt::format("cannot connect to Postgres at {}: {}", detail::redact_url(database_url), e.what()));
    }
    // Each statement runs in its own short transaction object: libpqxx allows
    // one open transaction per connection.
    const auto outside = [&](const std::string& sql) {
        pqxx::nontransaction tx(*connection);
        pqxx::result result = tx.exec(sql);
        tx.commit();
        return result;
    };
    // Every process migrating one schema takes this lock, so each migration
    // is applied once even when several start together.
    const std::string lock_key = detail::quote_literal(*connection, "idemq.migrate:" + schema);
    const std::string unlock_sql = fmt::format("SELECT pg_advisory_unlock(hashtext({}))", lock_key);
    outside(fmt::format("SELECT pg_advisory_lock(hashtext({}))", lock_key));
    std::size_t applied = 0;
    try {
        outside(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", quoted));
        outside(
            fmt::format("CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                        " component text NOT NULL, version integer NOT NULL, name text NOT NULL,"
                        " sql_sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
                        " PRIMARY KEY (component, version))",
                        quoted));
        std::map<std::pair<std::string, int>, std::string> recorded;
        for (const auto& row :
             outside(fmt::format("SELECT component, version, sql_sha256 FROM {}.schema_migrations", quoted))) {
            recorded[{row[0].as<std::string>(), row[1].as<int>()}] = row[2].as<std::string>();
        }
        for (const auto& m : migrations) {
            const std::string checksum = detail::sha256_hex(m.sql);
            const auto found = recorded.find({m.component, m.version});
            if (found != recorded.end()) {
                if (found->second != checksum) {
                    throw Error(
                        fmt::format("migration {} {} ({}) was changed after it was applied; migrations are "
                                    "forward-only: add a new one instead",
                                    m.component, m.version, m.name));
                }
                continue;
            }
            pqxx::work tx(*connection);
            tx.exec(detail::expand_schema(m.sql, quoted));
            tx.exec_params(fmt::format("INSERT INTO {}.schema_migrations (component, version, name, sql_sha256) "
                                       "VALUES ($1, $2, $3, $4)",
                                       quoted),
                           m.component, m.version, m.name, checksum);
            tx.commit();
            detail::log().info("applied migration {} {:04} {}", m.component, m.version, m.name);
            ++applied;
        }
    } catch (...) {
        try {
            outside(unlock_sql);
        } catch (const std::exception&) {
            // Closing the connection releases the lock anyway.
        }
        throw;
    }
    outside(unlock_sql);
    return applied;
}

}  // namespace idemq
