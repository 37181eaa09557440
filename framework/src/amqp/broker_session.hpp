#pragma once

#include <idemq/handler.hpp>
#include <idemq/options.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"

namespace idemq::detail {

// What ending a delivery needs of the broker: an ack or a reject on the
// connection it came on, and a confirmed publish of a copy. A seam, so that
// core/settlement is tested without a broker. Calls throw BrokerError.
class SettlementChannel {
public:
    virtual ~SettlementChannel() = default;
    // `multiple`: every outstanding delivery up to and including the tag.
    virtual void ack(std::uint64_t delivery_tag, bool multiple) = 0;
    virtual void reject(std::uint64_t delivery_tag, bool requeue) = 0;
    virtual void publish(std::string exchange, std::string routing_key, OwnedProperties properties, SharedBody body,
                         ConfirmedPublisher::Callback done) = 0;
    // Of the publishing connection: bounds the headers of a copy.
    [[nodiscard]] virtual int frame_max() const noexcept = 0;
};

// Everything a worker holds on the broker for one connection generation: the
// consumer connection with its consumers, and the publisher connection in
// confirm mode. Built on any thread, then used only by the loop thread.
struct BrokerSession final : SettlementChannel {
    std::unique_ptr<AmqpConnection> consumer;
    std::unique_ptr<AmqpConnection> publisher_connection;
    std::unique_ptr<ConfirmedPublisher> publisher;
    std::map<std::string, std::size_t> handler_by_consumer_tag;

    void ack(std::uint64_t delivery_tag, bool multiple) override { consumer->ack(delivery_tag, multiple); }
    void reject(std::uint64_t delivery_tag, bool requeue) override { consumer->reject(delivery_tag, requeue); }
    void publish(std::string exchange, std::string routing_key, OwnedProperties properties, SharedBody body,
                 ConfirmedPublisher::Callback done) override {
        publisher->publish(std::move(exchange), std::move(routing_key), std::move(properties), std::move(body),
                           std::move(done));
    }
    [[nodiscard]] int frame_max() const noexcept override { return publisher_connection->frame_max(); }
};

// Connects both connections, declares every route and delay tier, sets the
// prefetch and starts one consumer per route. Blocks while it talks to the
// broker; throws BrokerError when it cannot.
[[nodiscard]] std::unique_ptr<BrokerSession> open_broker_session(const WorkerOptions& options,
                                                                 const std::vector<Route>& routes,
                                                                 const std::vector<std::chrono::milliseconds>& tiers,
                                                                 std::uint64_t generation);

// A consumer tag that names the worker process, the route and the round, so
// a delivery can be traced to its consumer and a stale one recognised.
[[nodiscard]] std::string consumer_tag(std::size_t route_index, std::uint64_t generation, std::uint64_t round);

}  // namespace idemq::detail
