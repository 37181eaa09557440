#pragma once

#include <idemq/handler.hpp>
#include <idemq/options.hpp>
#include <idemq/worker.hpp>

#include <chrono>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "amqp_connection.hpp"
#include "confirmed_publisher.hpp"
#include "event_loop.hpp"
#include "process_delivery.hpp"
#include "worker_pool.hpp"

namespace idemq::detail {

struct RegisteredHandler {
    Route route;
    std::unique_ptr<Handler> handler;
};

// Counters written by the loop and handler threads, read from anywhere.
class SharedStats final {
public:
    template <class Fn>
    void update(Fn&& fn) {
        std::lock_guard lock(mutex_);
        fn(values_);
    }
    [[nodiscard]] WorkerStats snapshot() const {
        std::lock_guard lock(mutex_);
        return values_;
    }

private:
    mutable std::mutex mutex_;
    WorkerStats values_;
};

// One run of a worker: the event loop with its two AMQP connections (consume,
// publish), the handler threads, and every delivery between receipt and ack.
// The thread that calls run() is the loop thread; all AMQP traffic and all
// state below except the pool happen there.
class Runtime final {
public:
    Runtime(const WorkerOptions& options, std::vector<RegisteredHandler>& handlers, SharedStats& stats);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Connects, declares, consumes until stopped. Throws when it cannot start
    // or when the broker connection is lost.
    void run();
    // Any thread.
    void request_stop();

private:
    enum class State { kStarting, kRunning, kDraining, kClosed };

    // A delivery between receipt and ack, kept on the loop thread so the
    // original can be republished unchanged.
    struct InFlight {
        std::size_t handler_index = 0;
        std::shared_ptr<const Message> message;
        OwnedProperties properties;
    };

    void check_database() const;
    void connect_and_consume();
    void run_job(Job& job, DatabaseSession& session, const std::atomic<bool>& stopping);

    void drain_consumer() noexcept;
    void drain_publisher() noexcept;
    void on_delivery(Delivery delivery);
    void complete(std::uint64_t tag, Outcome outcome);
    void dead_letter(std::uint64_t tag, const Failure& failure);
    void ack(std::uint64_t tag);
    void requeue(std::uint64_t tag);
    void requeue_due();
    void on_signal(int signum);
    void begin_shutdown();
    void finish_if_drained();
    void finish();
    void fail(const std::exception& error);

    const WorkerOptions& options_;
    std::vector<RegisteredHandler>& handlers_;
    SharedStats& stats_;
    std::string crash_after_commit_;

    EventLoop loop_;
    std::unique_ptr<AmqpConnection> consumer_;
    std::unique_ptr<AmqpConnection> publisher_connection_;
    std::unique_ptr<ConfirmedPublisher> publisher_;
    std::unique_ptr<SocketWatcher> consumer_watch_;
    std::unique_ptr<SocketWatcher> publisher_watch_;
    std::unique_ptr<SignalWatcher> signals_;
    Timer tick_;
    Timer grace_;
    std::map<std::string, std::size_t> handler_by_consumer_tag_;
    std::unordered_map<std::uint64_t, InFlight> in_flight_;
    // Rolled-back deliveries wait a moment before going back to the queue, so
    // an always-failing message does not spin at full speed.
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> requeue_later_;
    State state_ = State::kStarting;
    std::exception_ptr fatal_;
    // Declared last: destroyed first, so handler threads are joined before
    // anything they post to goes away.
    std::unique_ptr<WorkerPool> pool_;
};

}  // namespace idemq::detail
