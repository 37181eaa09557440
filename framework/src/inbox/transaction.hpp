#pragma once

#include <idemq/errors.hpp>

#include <pqxx/dbtransaction>

#include <chrono>

namespace idemq::detail {

// A statement failed inside the transaction and its error was caught, so
// Postgres had already aborted it: COMMIT would have answered ROLLBACK.
// Nothing committed.
class TransactionAborted final : public Error {
public:
    using Error::Error;
};

// The transaction every delivery's claim and handler run in: a read-committed
// pqxx transaction whose commit is real or throws. libpqxx 6.4 marks a
// transaction aborted only for exec(), not for exec_params/exec_prepared, so a
// handler that catches a failed statement leaves Postgres aborted, and
// pqxx::work's COMMIT then "succeeds" with a ROLLBACK tag. This one finds an
// aborted transaction in the same round trip as COMMIT and throws
// TransactionAborted; a connection lost during COMMIT throws
// pqxx::in_doubt_error, as pqxx::work does.
class InboxTransaction final : public pqxx::dbtransaction {
public:
    explicit InboxTransaction(pqxx::connection_base& connection);
    ~InboxTransaction() noexcept override;
    InboxTransaction(const InboxTransaction&) = delete;
    InboxTransaction& operator=(const InboxTransaction&) = delete;

    // The savepoints of a group commit (one message after another in one
    // transaction). Sent without libpqxx's exec(), whose failure would roll
    // back the whole transaction: a failed savepoint command throws, and the
    // transaction is left as Postgres has it.
    // Starts a group: a wait for a lock longer than `lock_timeout` fails
    // (55P03) for the rest of the transaction, and the savepoint the first
    // message runs in is set.
    void begin_group(std::chrono::milliseconds lock_timeout);
    // Keeps what ran since the savepoint, then sets it again when `again`:
    // one round trip. Throws pqxx::sql_error with SQLSTATE 25P02 when a
    // statement since the savepoint failed (a handler swallowed its error).
    void release_savepoint(bool again);
    // Undoes everything since the savepoint; the savepoint stays set.
    void roll_back_to_savepoint();

private:
    void do_commit() override;
};

// What a handler that swallowed a failed statement is told.
[[nodiscard]] TransactionAborted aborted_by_swallowed_error();

}  // namespace idemq::detail
