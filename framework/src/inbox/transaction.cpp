#include "inbox/transaction.hpp"

#include <pqxx/connection_base>
#include <pqxx/except>

namespace idemq::detail {

namespace {

pqxx::in_doubt_error in_doubt(const std::exception& e) {
    return pqxx::in_doubt_error(
        std::string("the connection was lost during COMMIT; whether it committed is unknown: ") + e.what());
}

}  // namespace

InboxTransaction::InboxTransaction(pqxx::connection_base& connection)
    : namedclass("InboxTransaction", "idemq"), dbtransaction(connection, "READ COMMITTED", pqxx::read_write) {
    Begin();
}

InboxTransaction::~InboxTransaction() noexcept { End(); }

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
            throw TransactionAborted(
                "the transaction was aborted by a statement that failed earlier and whose error was caught, so "
                "nothing was committed. Let SQL errors escape the handler, or put a statement that may fail behind "
                "a savepoint (SAVEPOINT, then ROLLBACK TO SAVEPOINT on error)");
        }
        if (!conn().is_open()) throw in_doubt(e);
        throw;
    } catch (const std::exception& e) {
        if (!conn().is_open()) throw in_doubt(e);
        throw;
    }
}

}  // namespace idemq::detail
