#pragma once

#include <idemq/errors.hpp>

#include <pqxx/dbtransaction>

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

private:
    void do_commit() override;
};

}  // namespace idemq::detail
