#pragma once

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>
#include <idemq/options.hpp>
#include <idemq/stats.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace idemq {

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
