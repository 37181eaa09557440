#include <idemq/errors.hpp>
#include <idemq/worker.hpp>

#include <fmt/format.h>

#include <mutex>

#include "amqp/topology.hpp"
#include "common/backoff.hpp"
#include "core/runtime.hpp"
#include "outbox/relay.hpp"

namespace idemq {

struct Worker::Impl {
    WorkerOptions options;
    std::vector<detail::RegisteredHandler> handlers;
    std::unique_ptr<detail::Telemetry> telemetry;
    std::mutex run_mutex;
    detail::Runtime* running = nullptr;
    bool stop_requested = false;
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }

Worker::~Worker() = default;

void Worker::add_batch_handler(Route route, std::unique_ptr<BatchHandler> handler, BatchOptions options) {
    if (!handler) throw ConfigError("add_batch_handler: the handler must not be null");
    if (options.max_messages < 1 || options.max_messages > 10'000) {
        throw ConfigError(fmt::format("handler '{}': BatchOptions.max_messages must be 1 to 10000", route.handler));
    }
    if (options.linger.count() < 0 || options.linger > std::chrono::seconds(10)) {
        throw ConfigError(fmt::format("handler '{}': BatchOptions.linger must be 0 to 10 s", route.handler));
    }
    if (route.group_commit.max_messages != 1) {
        throw ConfigError(
            fmt::format("handler '{}': Route::group_commit is for a Handler; a BatchHandler groups by BatchOptions",
                        route.handler));
    }
    auto adapter = std::make_unique<detail::SingleMessageBatch>(std::move(handler));
    BatchHandler* batch = &adapter->batch();
    add_handler(std::move(route), std::move(adapter));
    impl_->handlers.back().batch = batch;
    impl_->handlers.back().batch_options = options;
}

void Worker::add_handler(Route route, std::unique_ptr<Handler> handler) {
    if (!handler) throw ConfigError("add_handler: the handler must not be null");
    route = detail::normalized(std::move(route));
    // Past 64 subtransactions a transaction overflows Postgres's per-backend
    // cache of them (PGPROC_MAX_CACHED_SUBXIDS), and every snapshot on the
    // server gets slower while it runs: each member of a group is one.
    if (route.group_commit.max_messages < 1 || route.group_commit.max_messages > 64) {
        throw ConfigError(
            fmt::format("handler '{}': Route::group_commit.max_messages must be 1 to 64 (each message is a Postgres "
                        "subtransaction, and more than 64 in one transaction slow down the whole server)",
                        route.handler));
    }
    if (route.group_commit.linger.count() < 0 || route.group_commit.linger > std::chrono::seconds(1)) {
        throw ConfigError(fmt::format("handler '{}': Route::group_commit.linger must be 0 to 1 s", route.handler));
    }
    for (const auto& existing : impl_->handlers) {
        if (existing.route.handler == route.handler) {
            throw ConfigError(fmt::format("handler '{}' is registered twice", route.handler));
        }
        if (existing.route.queue == route.queue) {
            throw ConfigError(fmt::format("handlers '{}' and '{}' both consume queue '{}'", existing.route.handler,
                                          route.handler, route.queue));
        }
    }
    Statements statements;
    try {
        handler->prepare(statements);
    } catch (const std::exception& e) {
        throw ConfigError(fmt::format("handler '{}': prepare() failed: {}", route.handler, e.what()));
    } catch (...) {
        throw ConfigError(fmt::format("handler '{}': prepare() threw a non-standard exception", route.handler));
    }
    detail::check_statement_names(detail::handler_statements(impl_->handlers), route.handler, statements);
    impl_->handlers.push_back(
        {.route = std::move(route), .handler = std::move(handler), .statements = std::move(statements)});
}

namespace {

// This worker's relay publishes to whoever consumes its outbox's exchanges,
// this worker's handlers included. A row retried until its last attempt may
// reach its receiver that long after an earlier copy did: if the receiver's
// inbox has pruned the key meanwhile, the copy is applied again.
void check_relay_retention(const WorkerOptions& options) {
    const auto schedule = detail::longest_retry_schedule(detail::RelaySettings::from(options));
    const auto needed = schedule + detail::kRelayRetentionMargin;
    if (options.inbox_retention <= needed) {
        const auto seconds = [](auto d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
        throw ConfigError(fmt::format(
            "IDEMQ_INBOX_RETENTION ({} s) is not longer than the outbox relay's longest retry schedule with "
            "IDEMQ_OUTBOX_MAX_ATTEMPTS={} ({} s) plus a margin of {} s for relay lag: a republished copy could "
            "arrive after its key was pruned and be applied twice; raise the retention, lower the attempts, or "
            "run this worker with IDEMQ_OUTBOX_RELAY=off (docs/outbox.md, Retention)",
            options.inbox_retention.count(), options.outbox_max_attempts, seconds(schedule),
            seconds(detail::kRelayRetentionMargin)));
    }
}

}  // namespace

WorkerStats Worker::run() {
    impl_->options.validate();
    if (impl_->handlers.empty()) throw ConfigError("the worker has no handlers: call add_handler() before run()");
    std::vector<std::string> names;
    for (const auto& registered : impl_->handlers) {
        names.push_back(registered.route.handler);
        // A copy of a message can wait in a delay queue for the whole retry
        // schedule (a crash between its publish and the original's ack): if
        // the key is pruned meanwhile, that copy would be applied again.
        const RetryPolicy& retry = registered.route.retry;
        const auto schedule = detail::longest_backoff(retry.delayed_base, retry.delayed_cap, retry.delayed_retries);
        if (impl_->options.inbox_retention <= schedule) {
            throw ConfigError(fmt::format(
                "IDEMQ_INBOX_RETENTION ({} s) is shorter than handler '{}''s longest retry schedule ({} s): a retried "
                "copy could arrive after its key was pruned and be applied twice; raise the retention",
                impl_->options.inbox_retention.count(), registered.route.handler,
                std::chrono::duration_cast<std::chrono::seconds>(schedule).count()));
        }
    }
    if (impl_->options.outbox_relay) check_relay_retention(impl_->options);
    std::unique_ptr<detail::Runtime> runtime;
    {
        std::lock_guard lock(impl_->run_mutex);
        impl_->telemetry = std::make_unique<detail::Telemetry>(names);
        runtime = std::make_unique<detail::Runtime>(impl_->options, impl_->handlers, *impl_->telemetry);
    }
    detail::Runtime& runtime_ref = *runtime;
    {
        std::lock_guard lock(impl_->run_mutex);
        impl_->running = &runtime_ref;
        if (impl_->stop_requested) runtime_ref.request_stop();
    }
    try {
        runtime_ref.run();
    } catch (...) {
        std::lock_guard lock(impl_->run_mutex);
        impl_->running = nullptr;
        throw;
    }
    std::lock_guard lock(impl_->run_mutex);
    impl_->running = nullptr;
    return impl_->telemetry->stats();
}

void Worker::request_stop() noexcept {
    std::lock_guard lock(impl_->run_mutex);
    impl_->stop_requested = true;
    if (impl_->running != nullptr) impl_->running->request_stop();
}

std::vector<Route> Worker::routes() const {
    std::vector<Route> out;
    for (const auto& registered : impl_->handlers) out.push_back(registered.route);
    return out;
}

WorkerStats Worker::stats() const {
    std::lock_guard lock(impl_->run_mutex);
    return impl_->telemetry ? impl_->telemetry->stats() : WorkerStats{};
}

int Worker::metrics_port() const {
    std::lock_guard lock(impl_->run_mutex);
    return impl_->running != nullptr ? impl_->running->metrics_port() : 0;
}

}  // namespace idemq
