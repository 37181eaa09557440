#pragma once

#include <pqxx/connection>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string_view>

namespace idemq::detail {

// Deletes inbox rows (and leftover crash-loop marks) received longer ago than
// `older_than`, `batch` rows per short transaction with `pause` between
// batches, so the hot path never waits behind it: only old rows are locked,
// and each lock is held for one small batch. Returns the rows deleted.
// Stops between batches once `stopping` is set.
std::size_t prune_inbox(pqxx::connection& connection, std::string_view schema, std::chrono::seconds older_than,
                        std::size_t batch, std::chrono::milliseconds pause,
                        const std::atomic<bool>* stopping = nullptr);

}  // namespace idemq::detail
