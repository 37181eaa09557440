#pragma once

#include <idemq/statements.hpp>

#include <pqxx/connection>

#include <string>
#include <vector>

namespace idemq::detail {

// A prepared statement a handler defined in prepare(), with the handler's
// name for the errors that concern it.
struct HandlerStatement {
    std::string handler;
    Statements::Definition definition;
};

// Throws ConfigError naming both handlers when `statements` of `handler`
// give a name of `existing` different SQL. The same definition in two
// handlers is one statement.
void check_statement_names(const std::vector<HandlerStatement>& existing, const std::string& handler,
                           const Statements& statements);

// Registers `statements` on `connection`, after idemq's own. libpqxx sends a
// definition to the server on its first use, so SQL that no longer prepares
// (a table dropped after start) fails that statement, inside the delivery's
// transaction: an ordinary handler failure, retried as Route::retry says.
void prepare_handler_statements(pqxx::connection_base& connection, const std::vector<HandlerStatement>& statements);

// Prepares every statement now, on a start-up connection of its own, so SQL
// that Postgres refuses (a typo, the application's migrations not applied)
// stops the worker before it consumes anything: throws ConfigError naming
// the handler, the statement and Postgres's message.
void check_handler_statements(const std::string& database_url, const std::vector<HandlerStatement>& statements);

}  // namespace idemq::detail
