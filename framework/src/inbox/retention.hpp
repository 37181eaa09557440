#pragma once

#include <idemq/options.hpp>

#include <pqxx/connection>

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string>
#include <string_view>

#include "loop/periodic_task.hpp"

namespace idemq::detail {

// Bounded deletion of aged rows, shared by the inbox and the outbox's
// published rows: a DELETE that removes at most $2 rows of `table` whose
// `time_column` is older than $1 seconds. Batches of ctids: the time
// column's index finds candidates, and no more than a batch of rows is
// scanned or locked at once.
[[nodiscard]] std::string aged_rows_delete_sql(std::string_view schema, std::string_view table,
                                               std::string_view time_column);

// One batch of `delete_sql` (from aged_rows_delete_sql) in its own short
// transaction. Returns the rows deleted: fewer than `batch` means none are
// left.
std::size_t delete_aged_batch(pqxx::connection& connection, const std::string& delete_sql,
                              std::chrono::seconds older_than, std::size_t batch);

// Deletes inbox rows (and leftover crash-loop marks) received longer ago than
// `older_than`, `batch` rows per short transaction with `pause` between
// batches, so the hot path never waits behind it: only old rows are locked,
// and each lock is held for one small batch. Returns the rows deleted.
// Stops between batches once a stop is requested.
std::size_t prune_inbox(pqxx::connection& connection, std::string_view schema, std::chrono::seconds older_than,
                        std::size_t batch, std::chrono::milliseconds pause, const std::stop_token& stop = {});

// The worker's own pruning (IDEMQ_INBOX_PRUNE_INTERVAL): prune_inbox every
// interval on a thread of its own, with a connection of its own, until
// destroyed. Failures are logged and tried again next time.
class InboxPruner final {
public:
    explicit InboxPruner(const WorkerOptions& options);

private:
    PeriodicTask task_;
};

}  // namespace idemq::detail
