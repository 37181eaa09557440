#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace idemq {

/// What a worker has done since it started. Counts deliveries, so a message
/// redelivered after a crash may count twice (once as processed by the old
/// process, once as a duplicate by the new one).
struct WorkerStats {
    std::uint64_t received = 0;
    std::uint64_t processed = 0;          ///< Handler ran and its transaction committed.
    std::uint64_t duplicates = 0;         ///< Key already in the inbox with the same body: acked, handler not run.
    std::uint64_t immediate_retries = 0;  ///< Attempts re-run at once, in process.
    std::uint64_t delayed_retries = 0;    ///< Attempts scheduled through a delay tier (broker-confirmed).
    std::uint64_t in_doubt = 0;           ///< COMMIT outcome unknown: run again, the inbox decided.
    std::uint64_t released = 0;           ///< Returned to the queue untouched (shutdown, paused consumer).
    std::uint64_t broker_reconnects = 0;  ///< Times the broker connection was re-established.
    std::uint64_t database_pauses = 0;    ///< Times consumption paused because Postgres was unreachable.
    std::uint64_t batches = 0;            ///< Batch transactions committed (batch handlers).
    std::uint64_t acks_sent = 0;          ///< basic.ack frames sent: one may settle many deliveries.
    std::uint64_t deliveries_acked = 0;   ///< Deliveries settled by an ack (single or multiple).
    std::map<std::string, std::uint64_t> dead_lettered{};  ///< By reason.
};

}  // namespace idemq
