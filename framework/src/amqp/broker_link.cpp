#include "amqp/broker_link.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "common/backoff.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

namespace idemq::detail {

using std::chrono::milliseconds;

BrokerLink::BrokerLink(EventLoop& loop, const WorkerOptions& options, std::vector<Route> routes,
                       const std::vector<milliseconds>& tiers, Callbacks callbacks)
    : loop_(loop),
      options_(options),
      routes_(std::move(routes)),
      tiers_(tiers),
      callbacks_(std::move(callbacks)),
      reconnect_timer_(loop) {}

BrokerLink::~BrokerLink() { join(); }

void BrokerLink::join() noexcept {
    if (connector_.joinable()) connector_.join();
}

void BrokerLink::connect() { attach(open_broker_session(options_, routes_, tiers_, generation_), false); }

void BrokerLink::attach(std::unique_ptr<BrokerSession> session, bool reconnected) {
    session_ = std::move(session);
    consumer_watch_ = std::make_unique<SocketWatcher>(loop_, session_->consumer->fd(), [this] { drain_consumer(); });
    publisher_watch_ =
        std::make_unique<SocketWatcher>(loop_, session_->publisher_connection->fd(), [this] { drain_publisher(); });
    // Deliveries that arrived while basic.consume was answered wait in
    // rabbitmq-c's queue, not on the socket: the socket watcher won't see them.
    loop_.post([this] { drain(); });
    callbacks_.attached(*session_, generation_, reconnected);
}

void BrokerLink::drain() noexcept {
    drain_consumer();
    drain_publisher();
}

void BrokerLink::drain_consumer() noexcept {
    try {
        while (session_ && !closed_) {
            auto event = session_->consumer->poll_event();
            if (!event) return;
            if (auto* delivery = std::get_if<Delivery>(&*event)) {
                callbacks_.delivery(std::move(*delivery));
            } else if (auto* cancelled = std::get_if<ConsumerCancelled>(&*event); cancelled && cancelled->by_broker) {
                throw BrokerError(
                    fmt::format("the broker cancelled consumer '{}' (was its queue deleted?)", cancelled->consumer_tag),
                    false);
            }
        }
    } catch (const std::exception& e) {
        callbacks_.lost(e);
    }
}

void BrokerLink::drain_publisher() noexcept {
    try {
        while (session_ && !closed_) {
            auto event = session_->publisher_connection->poll_event();
            if (!event) return;
            session_->publisher->on_event(*event);
        }
    } catch (const std::exception& e) {
        callbacks_.lost(e);
    }
}

void BrokerLink::drop(const std::string& why) {
    ++generation_;
    // libuv must stop polling a socket before its descriptor is closed.
    consumer_watch_.reset();
    publisher_watch_.reset();
    auto lost = std::move(session_);
    if (lost) lost->publisher->fail_all(why);
}

void BrokerLink::reconnect_later() {
    const milliseconds delay =
        jittered(backoff_ceiling(kReconnectFirst, kReconnectMax, failed_reconnects_++), Jitter::kEqual, random_);
    reconnect_timer_.start(delay, milliseconds(0), [this] { start_connector(); });
}

// Connecting blocks, so it happens on a thread of its own; the finished
// session is handed to the loop, which alone uses it from then on.
void BrokerLink::start_connector() {
    join();
    connector_ = std::thread([this, generation = generation_] {
        try {
            auto session = open_broker_session(options_, routes_, tiers_, generation);
            loop_.post([this, session = std::shared_ptr<BrokerSession>(session.release()), generation]() mutable {
                if (closed_ || !callbacks_.wanted() || generation != generation_) {
                    callbacks_.idle();
                    return;
                }
                failed_reconnects_ = 0;
                attach(std::make_unique<BrokerSession>(std::move(*session)), true);
            });
        } catch (const std::exception& e) {
            loop_.post([this, why = first_line(e.what())] {
                if (closed_ || !callbacks_.wanted()) {
                    callbacks_.idle();
                    return;
                }
                log().warn("cannot reconnect to the broker yet: {}", why);
                reconnect_later();
            });
        }
    });
}

void BrokerLink::cancel_consumers() {
    if (!session_) return;
    for (const auto& [tag, index] : session_->handler_by_consumer_tag) session_->consumer->cancel(tag);
}

void BrokerLink::start_consumers() {
    if (!session_) return;
    ++consume_round_;
    std::map<std::string, std::size_t> tags;
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const std::string tag = consumer_tag(i, generation_, consume_round_);
        session_->consumer->consume_async(routes_[i].queue, tag);
        tags.emplace(tag, i);
    }
    session_->handler_by_consumer_tag = std::move(tags);
}

void BrokerLink::close() noexcept {
    if (closed_) return;
    closed_ = true;
    reconnect_timer_.stop();
    consumer_watch_.reset();
    publisher_watch_.reset();
    if (session_) {
        session_->publisher->fail_all("the worker is shutting down");
        session_->consumer->close();
        session_->publisher_connection->close();
    }
}

}  // namespace idemq::detail
