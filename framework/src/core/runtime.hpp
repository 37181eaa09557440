#pragma once

#include <idemq/handler.hpp>
#include <idemq/options.hpp>
#include <idemq/worker.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "amqp/broker_link.hpp"
#include "amqp/broker_session.hpp"
#include "core/exit_watchdog.hpp"
#include "core/fault_points.hpp"
#include "core/handler_pool.hpp"
#include "core/registered_handler.hpp"
#include "core/settlement.hpp"
#include "core/verdict.hpp"
#include "inbox/retention.hpp"
#include "loop/event_loop.hpp"
#include "ops/health.hpp"
#include "ops/telemetry.hpp"
#include "outbox/relay.hpp"

namespace idemq::detail {

// One run of a worker: the event loop with its broker session (consume and
// publish connections), the handler threads, and every delivery between
// receipt and ack. The thread that calls run() is the loop thread; all AMQP
// traffic and all state here except the pool belong to it.
class Runtime final {
public:
    Runtime(const WorkerOptions& options, std::vector<RegisteredHandler>& handlers, Telemetry& telemetry);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Connects, declares, consumes until stopped. Throws when it cannot start;
    // after a start, broker and database outages are ridden out.
    void run();
    // Any thread.
    void request_stop();
    // The port serving /metrics, once run() has started it (0 otherwise). Any thread.
    [[nodiscard]] int metrics_port() const noexcept { return metrics_port_.load(); }

private:
    enum class State { kStarting, kRunning, kDraining, kClosed };

    [[nodiscard]] std::vector<Route> routes() const;
    void on_attached(BrokerSession& session, std::uint64_t generation, bool reconnected);
    void run_job(Job& job, DatabaseSession& session, const std::stop_token& stop);
    void run_batch(std::vector<Job>& jobs, DatabaseSession& session, const std::stop_token& stop);
    void post_verdict(const Job& job, Verdict verdict);

    // Loop thread.
    void on_delivery(Delivery delivery);
    void complete(std::uint64_t tag, std::uint64_t generation, const Verdict& verdict);
    void on_tick();
    void request_ack_flush();
    void flush_acks();
    [[nodiscard]] std::string not_ready_reason() const;
    void on_signal(int signum);
    void on_database_reachable(bool reachable);
    void pause_consuming();
    void stop_intake();
    void resume_consuming();
    void lose_broker(const std::exception& error);
    void begin_shutdown();
    void finish_if_drained();
    void finish();
    // The grace period is over with deliveries in flight. Loop thread.
    void grace_over();
    // After the loop: handler threads returned, their statements cancelled if
    // the grace is over (see docs/operations.md, "Stopping").
    void stop_handlers();

    // Exit code when handler threads have not returned kHardExitBound after
    // the grace (EX_TEMPFAIL: their deliveries are back in the queue).
    static constexpr int kExitHandlersStuck = 75;
    static constexpr std::chrono::milliseconds kHardExitBound{3'000};

    const WorkerOptions& options_;
    std::vector<RegisteredHandler>& handlers_;
    Telemetry& telemetry_;
    FaultPoints faults_;
    std::vector<std::chrono::milliseconds> tiers_;

    EventLoop loop_;
    Settlement settlement_;
    std::unique_ptr<SignalWatcher> signals_;
    Timer tick_;
    Timer grace_;
    // Wakes the loop when acks held behind a gap are due.
    Timer ack_hold_;
    bool ack_flush_posted_ = false;
    BrokerLink link_;
    State state_ = State::kStarting;
    int database_down_threads_ = 0;
    bool paused_ = false;
    std::unique_ptr<Health> health_;
    std::atomic<int> metrics_port_{0};
    std::unique_ptr<InboxPruner> pruner_;
    std::unique_ptr<OutboxRelay> relay_;
    std::optional<std::chrono::steady_clock::time_point> shutdown_deadline_;
    bool grace_expired_ = false;
    // Armed when the grace is over and the worker owns the process
    // (handle_signals); destroyed after the pool, so joining it is covered.
    std::unique_ptr<ExitWatchdog> exit_watchdog_;
    // Declared last: destroyed first, so handler threads are joined before
    // anything they post to goes away.
    std::unique_ptr<HandlerPool> pool_;
};

}  // namespace idemq::detail
