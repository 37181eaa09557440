#pragma once

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>
#include <idemq/options.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

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
    std::map<std::string, std::uint64_t> dead_lettered{};  ///< By reason.
};

/// Consumes the registered handlers' queues with effectively-once semantics.
/// Owns an event-loop thread (the AMQP connections) and `concurrency` handler
/// threads (one Postgres connection each).
class Worker final {
public:
    explicit Worker(WorkerOptions options);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    /// Registers a handler before `run()`. Throws ConfigError for a bad route
    /// or a handler name registered twice.
    void add_handler(Route route, std::unique_ptr<Handler> handler);

    /// Registers a batch handler: deliveries of `route` are handled up to
    /// `options.max_messages` per transaction. Same rules as add_handler.
    void add_batch_handler(Route route, std::unique_ptr<BatchHandler> handler, BatchOptions options = {});

    /// Validates the options, connects, declares the topology and consumes
    /// until `request_stop()` or a signal; then stops consuming, lets handlers
    /// in flight finish within the grace period, acks what committed and
    /// closes. Blocks the calling thread. Throws ConfigError, BrokerError or
    /// pqxx exceptions when it cannot start or loses a service.
    WorkerStats run();

    /// Asks `run()` to stop gracefully. Thread-safe; idempotent.
    void request_stop() noexcept;

    /// The registered routes, defaults filled in.
    [[nodiscard]] std::vector<Route> routes() const;

    /// The port serving /metrics, /healthz and /readyz while run() runs
    /// (useful with IDEMQ_METRICS_ADDR port 0), else 0. Thread-safe.
    [[nodiscard]] int metrics_port() const;

    /// A snapshot of the counters. Thread-safe.
    [[nodiscard]] WorkerStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace idemq
