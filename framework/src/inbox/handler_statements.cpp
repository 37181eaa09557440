#include "inbox/handler_statements.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <pqxx/except>

#include <memory>

#include "common/config_text.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"
#include "inbox/schema_check.hpp"

namespace idemq::detail {

void check_statement_names(const std::vector<HandlerStatement>& existing, const std::string& handler,
                           const Statements& statements) {
    for (const auto& definition : statements.definitions()) {
        for (const auto& other : existing) {
            if (other.definition.name == definition.name && other.definition.sql != definition.sql) {
                throw ConfigError(fmt::format(
                    "handlers '{}' and '{}' both define prepared statement '{}', with different SQL: the names share "
                    "one namespace per connection, rename one",
                    other.handler, handler, definition.name));
            }
        }
    }
}

void prepare_handler_statements(pqxx::connection_base& connection, const std::vector<HandlerStatement>& statements) {
    for (const auto& statement : statements) connection.prepare(statement.definition.name, statement.definition.sql);
}

void check_handler_statements(const std::string& database_url, const std::vector<HandlerStatement>& statements) {
    if (statements.empty()) return;
    const std::unique_ptr<pqxx::connection> connection = open_startup_check_connection(database_url);
    for (const auto& statement : statements) {
        try {
            connection->prepare(statement.definition.name, statement.definition.sql);
            connection->prepare_now(statement.definition.name);
        } catch (const pqxx::broken_connection&) {
            throw;
        } catch (const pqxx::sql_error& e) {
            throw ConfigError(fmt::format(
                "handler '{}': prepared statement '{}' does not prepare in {}: {} (are the application's "
                "migrations applied?)",
                statement.handler, statement.definition.name, redact_url(database_url), first_line(e.what())));
        }
    }
}

}  // namespace idemq::detail
