#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "amqp/connection.hpp"

namespace idemq::detail {

// A body to publish, shared with whoever holds it already (the delivery it
// is a copy of): a republished body is never copied on its way out.
struct SharedBody {
    std::shared_ptr<const void> owner;
    std::string_view bytes;

    [[nodiscard]] static SharedBody own(std::string body) {
        auto held = std::make_shared<const std::string>(std::move(body));
        const std::string_view bytes = *held;
        return {std::move(held), bytes};
    }
};

// Publishes with publisher confirms and `mandatory` on its own connection,
// and reports each publish's fate: confirmed by the broker, or failed
// (nacked, unroutable, or the connection went away). Loop thread only.
class ConfirmedPublisher final {
public:
    // Called once per publish: nullopt when the broker confirmed it, else why not.
    using Callback = std::function<void(std::optional<std::string> error)>;

    // Puts `connection` in confirm mode.
    explicit ConfirmedPublisher(AmqpConnection& connection);

    // `done` may be called before publish returns: when the publish cannot
    // be encoded it fails alone and the connection stays up.
    void publish(std::string exchange, std::string routing_key, OwnedProperties properties, SharedBody body,
                 Callback done);
    // For a body the caller gives away.
    void publish(std::string exchange, std::string routing_key, OwnedProperties properties, std::string body,
                 Callback done) {
        publish(std::move(exchange), std::move(routing_key), std::move(properties), SharedBody::own(std::move(body)),
                std::move(done));
    }

    // Feeds an event read from the connection (confirms, returns, flow control).
    void on_event(AmqpEvent& event);

    // Fails every outstanding publish; for a lost connection.
    void fail_all(const std::string& why);

    [[nodiscard]] std::size_t outstanding() const noexcept { return pending_.size() + held_.size(); }

private:
    struct Pending {
        Callback done;
        std::optional<std::string> returned;
    };
    struct Held {
        std::string exchange;
        std::string routing_key;
        OwnedProperties properties;
        SharedBody body;
        Callback done;
    };

    void send(Held held);
    void settle(std::uint64_t sequence, bool multiple, bool ack);

    AmqpConnection& connection_;
    std::uint64_t next_sequence_ = 1;
    std::map<std::uint64_t, Pending> pending_;
    // Publishes kept back while the broker has blocked the connection: writing
    // them would only fill the socket and stall this thread.
    std::deque<Held> held_;
    bool blocked_ = false;
};

// Confirmed publishes for code that may block (the tools, the tests, the
// benchmark; never the worker's loop): a connection of its own with a
// ConfirmedPublisher on it, and the wait for the broker's confirms.
class BlockingPublisher final {
public:
    // At most `window` publishes are left unconfirmed at once.
    explicit BlockingPublisher(const AmqpConnection::Settings& settings, std::size_t window = 1000);

    // Publishes, takes in the confirms that have arrived, and waits while
    // more than `window` are outstanding. `done` is called once per publish.
    void publish(std::string exchange, std::string routing_key, OwnedProperties properties, std::string body,
                 ConfirmedPublisher::Callback done);
    // Waits until at most `outstanding` publishes are unconfirmed. Throws
    // BrokerError when the broker sends nothing for `silence`.
    void wait_until(std::size_t outstanding, std::chrono::milliseconds silence = std::chrono::seconds(30));
    void wait_all() { wait_until(0); }
    // Takes in whatever the broker sent without waiting, and sends a heartbeat
    // when one is due: for a caller that idles between publishes.
    void take_events();

    [[nodiscard]] AmqpConnection& connection() noexcept { return connection_; }
    [[nodiscard]] std::size_t outstanding() const noexcept { return publisher_.outstanding(); }

private:
    AmqpConnection connection_;
    ConfirmedPublisher publisher_;
    std::size_t window_;
};

}  // namespace idemq::detail
