#include <idemq/errors.hpp>
#include <idemq/worker.hpp>

#include <fmt/format.h>

#include <mutex>

#include "runtime.hpp"
#include "topology.hpp"

namespace idemq {

struct Worker::Impl {
    WorkerOptions options;
    std::vector<detail::RegisteredHandler> handlers;
    detail::SharedStats stats;
    std::mutex run_mutex;
    detail::Runtime* running = nullptr;
    bool stop_requested = false;
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }

Worker::~Worker() = default;

void Worker::add_handler(Route route, std::unique_ptr<Handler> handler) {
    if (!handler) throw ConfigError("add_handler: the handler must not be null");
    route = detail::normalized(std::move(route));
    for (const auto& existing : impl_->handlers) {
        if (existing.route.handler == route.handler) {
            throw ConfigError(fmt::format("handler '{}' is registered twice", route.handler));
        }
        if (existing.route.queue == route.queue) {
            throw ConfigError(fmt::format("handlers '{}' and '{}' both consume queue '{}'", existing.route.handler,
                                          route.handler, route.queue));
        }
    }
    impl_->handlers.push_back({std::move(route), std::move(handler)});
}

WorkerStats Worker::run() {
    impl_->options.validate();
    if (impl_->handlers.empty()) throw ConfigError("the worker has no handlers: call add_handler() before run()");
    detail::Runtime runtime(impl_->options, impl_->handlers, impl_->stats);
    {
        std::lock_guard lock(impl_->run_mutex);
        impl_->running = &runtime;
        if (impl_->stop_requested) runtime.request_stop();
    }
    try {
        runtime.run();
    } catch (...) {
        std::lock_guard lock(impl_->run_mutex);
        impl_->running = nullptr;
        throw;
    }
    std::lock_guard lock(impl_->run_mutex);
    impl_->running = nullptr;
    return impl_->stats.snapshot();
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

WorkerStats Worker::stats() const { return impl_->stats.snapshot(); }

}  // namespace idemq
