#include "inbox/transaction.hpp"

#include <pqxx/connection_base>
#include <pqxx/except>

#include <string>

namespace idemq::detail {

namespace {

pqxx::in_doubt_error in_doubt(const std::exception& e) {
    return pqxx::in_doubt_error(
        std::string("the connection was lost during COMMIT; whether it committed is unknown: ") + e.what());
}

}  // namespace

TransactionAborted aborted_by_swallowed_error() {
    return TransactionAborted(
        "the transaction was aborted by a statement that failed earlier and whose error was caught, so "
        "nothing was committed. Let SQL errors escape the handler, or put a statement that may fail behind "
        "a savepoint (SAVEPOINT, then ROLLBACK TO SAVEPOINT on error)");
}

InboxTransaction::InboxTransaction(pqxx::connection_base& connection)
    : namedclass("InboxTransaction", "idemq"), dbtransaction(connection, "READ COMMITTED", pqxx::read_write) {
    Begin();
}

InboxTransaction::~InboxTransaction() noexcept { End(); }

void InboxTransaction::begin_group(std::chrono::milliseconds lock_timeout) {
    const std::string sql =
        "SET LOCAL lock_timeout = " + std::to_string(lock_timeout.count()) + "; SAVEPOINT idemq_message";
    direct_exec(sql.c_str());
}

void InboxTransaction::release_savepoint(bool again) {
    // In a transaction Postgres aborted since the savepoint, RELEASE fails
    // with 25P02 and the SAVEPOINT behind it never runs.
    direct_exec(again ? "RELEASE SAVEPOINT idemq_message; SAVEPOINT idemq_message" : "RELEASE SAVEPOINT idemq_message");
}

void InboxTransaction::roll_back_to_savepoint() { direct_exec("ROLLBACK TO SAVEPOINT idemq_message"); }

void InboxTransaction::do_commit() {
    try {
        // One round trip. In a transaction Postgres has aborted, the probe
        // fails with 25P02 and the COMMIT behind it is never run; otherwise the
        // probe is free and the COMMIT's own errors surface as usual.
        direct_exec("SELECT 1; COMMIT");
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() == "25P02") {
            // The COMMIT never ran, so the server still holds the aborted
            // transaction, and libpqxx will not roll back a transaction whose
            // commit failed: end it here, or the connection's next one fails.
            direct_exec("ROLLBACK");
            throw aborted_by_swallowed_error();
        }
        if (!conn().is_open()) throw in_doubt(e);
        throw;
    } catch (const std::exception& e) {
        if (!conn().is_open()) throw in_doubt(e);
        throw;
    }
}

}  // namespace idemq::detail
