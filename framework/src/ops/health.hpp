#pragma once

#include <idemq/options.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "loop/event_loop.hpp"
#include "loop/periodic_task.hpp"
#include "ops/http_server.hpp"
#include "ops/telemetry.hpp"

namespace idemq::detail {

// What a worker shows the outside: /metrics, /healthz and /readyz served
// from the loop thread, and a database probe that keeps /readyz true to
// Postgres even while no message flows. Loop thread, except port().
class Health final {
public:
    // Why the worker is not ready ("" when it is), from the runtime's point
    // of view; the probe's verdict is added to it. Loop thread.
    using NotReady = std::function<std::string()>;

    Health(EventLoop& loop, const WorkerOptions& options, Telemetry& telemetry, NotReady not_ready);
    Health(const Health&) = delete;
    Health& operator=(const Health&) = delete;

    // Serves on options.metrics_address (unless empty) and starts the probe.
    // Throws Error when a chosen address cannot be used; with the default
    // address taken (a second worker on the host), runs without the endpoint.
    void start();
    // Stops serving; the probe stops with the object.
    void stop_serving() noexcept;
    // The port serving the endpoints, 0 before start() or without them. Any thread.
    [[nodiscard]] int port() const noexcept { return port_.load(); }

private:
    [[nodiscard]] HttpResponse serve(const std::string& method, const std::string& path) const;
    [[nodiscard]] std::string not_ready_reason() const;

    EventLoop& loop_;
    const WorkerOptions& options_;
    Telemetry& telemetry_;
    NotReady not_ready_;
    std::unique_ptr<HttpServer> http_;
    std::atomic<int> port_{0};
    bool database_ok_ = true;
    std::string database_error_;
    // Last: its thread posts to the loop, so it stops before the rest goes.
    std::unique_ptr<PeriodicTask> probe_;
};

}  // namespace idemq::detail
