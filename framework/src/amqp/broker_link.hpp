#pragma once

#include <idemq/handler.hpp>
#include <idemq/options.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "amqp/broker_session.hpp"
#include "amqp/events.hpp"
#include "loop/event_loop.hpp"

namespace idemq::detail {

// The worker's hold on the broker: one BrokerSession at a time, both of its
// sockets watched on the loop, consumers cancelled and started again, and
// after a loss the reconnect (jittered backoff, connecting on a thread of
// its own so the loop never blocks). Every session gets a new generation:
// delivery tags and confirms of an old one mean nothing on a new channel.
// Loop thread only.
class BrokerLink final {
public:
    struct Callbacks {
        std::function<void(Delivery)> delivery;
        // A session is in use: the first one, or one after a reconnect.
        std::function<void(BrokerSession&, std::uint64_t generation, bool reconnected)> attached;
        // The session failed (a broker call threw, a consumer was cancelled by the broker).
        std::function<void(const std::exception&)> lost;
        // Whether to go on reconnecting; when not, `idle` is called instead.
        std::function<bool()> wanted;
        std::function<void()> idle;
    };

    BrokerLink(EventLoop& loop, const WorkerOptions& options, std::vector<Route> routes,
               const std::vector<std::chrono::milliseconds>& tiers, Callbacks callbacks);
    ~BrokerLink();
    BrokerLink(const BrokerLink&) = delete;
    BrokerLink& operator=(const BrokerLink&) = delete;

    // The first session, on the calling thread. Throws BrokerError: a broker
    // that cannot be reached at start is a configuration problem more often
    // than an outage, so the worker fails fast and its supervisor retries.
    void connect();
    // The session in use, or null while reconnecting or closed.
    [[nodiscard]] BrokerSession* session() const noexcept { return session_.get(); }
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

    // Reads whatever both connections have buffered (also from the tick:
    // rabbitmq-c sends heartbeats only inside its own calls).
    void drain() noexcept;
    // Voids the session after a loss: its pending publishes fail with `why`.
    void drop(const std::string& why);
    // Connects again after a jittered, growing delay.
    void reconnect_later();
    // Stops consuming, for a pause or a shutdown (deliveries already here stay).
    void cancel_consumers();
    // Consumes every route again, with new consumer tags.
    void start_consumers();
    // No reconnect from now (a shutdown began); a connector already running finds `wanted` false.
    void stop_reconnecting() noexcept { reconnect_timer_.stop(); }
    // Ends everything: no reconnect, pending publishes fail, connections closed.
    void close() noexcept;
    // Joins the connector thread, if one ran.
    void join() noexcept;

private:
    void attach(std::unique_ptr<BrokerSession> session, bool reconnected);
    void drain_consumer() noexcept;
    void drain_publisher() noexcept;
    void start_connector();

    static constexpr std::chrono::milliseconds kReconnectFirst{200};
    static constexpr std::chrono::milliseconds kReconnectMax{30'000};

    EventLoop& loop_;
    const WorkerOptions& options_;
    const std::vector<Route> routes_;
    const std::vector<std::chrono::milliseconds>& tiers_;
    Callbacks callbacks_;
    std::unique_ptr<BrokerSession> session_;
    std::unique_ptr<SocketWatcher> consumer_watch_;
    std::unique_ptr<SocketWatcher> publisher_watch_;
    Timer reconnect_timer_;
    std::thread connector_;
    std::uint64_t generation_ = 1;
    std::uint64_t consume_round_ = 0;
    int failed_reconnects_ = 0;  // since the last session: the backoff's exponent
    std::mt19937_64 random_{std::random_device{}()};
    bool closed_ = false;
};

}  // namespace idemq::detail
