#pragma once

#include <idemq/options.hpp>

#include <pqxx/connection>

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string_view>

#include "loop/periodic_task.hpp"

namespace idemq::detail {

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
