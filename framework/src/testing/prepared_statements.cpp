#include <idemq/testing.hpp>

#include <pqxx/transaction_base>

namespace idemq::testing {
namespace {

void register_all(const Statements& statements, pqxx::transaction_base& tx) {
    for (const auto& definition : statements.definitions()) tx.conn().prepare(definition.name, definition.sql);
}

}  // namespace

void prepare_statements(Handler& handler, pqxx::transaction_base& tx) {
    Statements statements;
    handler.prepare(statements);
    register_all(statements, tx);
}

void prepare_statements(BatchHandler& handler, pqxx::transaction_base& tx) {
    Statements statements;
    handler.prepare(statements);
    register_all(statements, tx);
}

}  // namespace idemq::testing
