#pragma once

#include "amqp/events.hpp"
#include "amqp/properties.hpp"
#include "amqp/tls.hpp"

#include <idemq/errors.hpp>

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace idemq::detail {

// One publish that cannot be encoded (its properties do not fit in a frame,
// a name is longer than a short string). Thrown before anything is written,
// so the connection is intact: fail that publish, not the connection.
class UnencodablePublish final : public Error {
public:
    using Error::Error;
};

// One AMQP connection with one channel, and the only place rabbitmq-c is
// called. Not thread-safe: rabbitmq-c is not, so one thread drives it (in the
// worker, the loop thread). Every failure becomes a BrokerError carrying the
// library's or the broker's own message.
class AmqpConnection final {
public:
    struct Settings {
        std::string url;
        BrokerSecurity security{};  // TLS and login; amqps:// URLs use TLS
        std::string connection_name;
        std::chrono::seconds heartbeat{30};
        std::chrono::milliseconds timeout{10'000};  // connect and each synchronous RPC
    };

    // Connects (over TLS for amqps://), logs in with the URL's user and
    // password or the client certificate (EXTERNAL), announcing
    // consumer_cancel_notify, connection.blocked and publisher confirms, and
    // opens channel 1. Throws ConfigError for a malformed URL or TLS settings
    // that contradict it, BrokerError when the broker cannot be reached, its
    // certificate is refused or it refuses us.
    explicit AmqpConnection(const Settings& settings);
    ~AmqpConnection();
    AmqpConnection(const AmqpConnection&) = delete;
    AmqpConnection& operator=(const AmqpConnection&) = delete;

    [[nodiscard]] int fd() const noexcept;
    [[nodiscard]] int frame_max() const noexcept;

    // Synchronous RPCs: they wait for the broker's reply, so the worker calls
    // them only while setting up or from tools.
    void declare_exchange(std::string_view name, std::string_view type);
    void declare_queue(std::string_view name);
    void bind_queue(std::string_view queue, std::string_view exchange, std::string_view routing_key);
    // A fanout exchange and a queue of the same name whose messages expire
    // after `ttl` and are then dead-lettered through the default exchange
    // with their own routing key: a delay line back to that queue.
    void declare_delay_tier(std::string_view name, std::chrono::milliseconds ttl);
    struct QueueCounts {
        std::uint32_t messages = 0;  // ready, not unacked
        std::uint32_t consumers = 0;
    };
    // Counts of an existing queue, or nullopt when it does not exist. A
    // missing queue closes the channel on the broker, so the channel is reopened.
    [[nodiscard]] std::optional<QueueCounts> inspect_queue(std::string_view name);
    // True when exchange `name` exists (a passive declare). A missing one
    // closes the channel on the broker, so the channel is reopened, without
    // publisher confirms: a publishing caller replaces its connection then.
    [[nodiscard]] bool exchange_exists(std::string_view name);
    void set_prefetch(std::uint16_t count);
    void consume(std::string_view queue, std::string_view consumer_tag);
    void enable_publisher_confirms();
    // basic.get: the next message of `queue` without acking it (ack() or
    // reject() it later), or nullopt when the queue is empty.
    [[nodiscard]] std::optional<Delivery> get(std::string_view queue);

    // Asynchronous sends: they return once the frame is written.
    // `multiple` acks every outstanding delivery up to and including the tag.
    void ack(std::uint64_t delivery_tag, bool multiple = false);
    void reject(std::uint64_t delivery_tag, bool requeue);
    void cancel(std::string_view consumer_tag);
    // basic.consume without waiting for consume-ok.
    void consume_async(std::string_view queue, std::string_view consumer_tag);
    // Throws UnencodablePublish, having sent nothing, when the publish cannot
    // be encoded: rabbitmq-c would find out only after the method frame was
    // written, leaving the channel mid-message.
    void publish(std::string_view exchange, std::string_view routing_key, bool mandatory,
                 const OwnedProperties& properties, std::string_view body);

    // The next complete event if one can be read without waiting, else
    // nullopt. Sends a heartbeat when one is due. Throws BrokerError when the
    // connection or channel is lost.
    [[nodiscard]] std::optional<AmqpEvent> poll_event();
    // Like poll_event, but waits up to `timeout` for an event.
    [[nodiscard]] std::optional<AmqpEvent> wait_event(std::chrono::milliseconds timeout);

    // Closes the channel and connection politely; idempotent.
    void close() noexcept;

private:
    void open_channel();
    void check_status(int status, std::string_view what);
    void check_reply(std::string_view what);

    amqp_connection_state_t state_ = nullptr;
    ContentAssembler assembler_;  // channel 1
    ContentAssembler control_;    // channel 0
    bool open_ = false;
};

}  // namespace idemq::detail
