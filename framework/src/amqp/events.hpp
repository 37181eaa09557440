#pragma once

#include "amqp/properties.hpp"

#include <amqp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace idemq::detail {

struct Delivery {
    std::string consumer_tag;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::string exchange;
    std::string routing_key;
    OwnedProperties properties;
    std::string body;
};

// A mandatory publish the broker could not route; its confirm follows.
struct Returned {
    int reply_code = 0;
    std::string reply_text;
    std::string exchange;
    std::string routing_key;
    OwnedProperties properties;
    std::string body;
};

// Why a returned publish did not arrive, for the publisher's error.
[[nodiscard]] std::string describe(const Returned& returned);

// A publisher confirm (basic.ack or basic.nack from the broker).
struct Confirm {
    std::uint64_t sequence = 0;
    bool multiple = false;
    bool ack = true;
};

// The broker cancelled our consumer (queue deleted, node failure), or
// confirmed our own basic.cancel.
struct ConsumerCancelled {
    std::string consumer_tag;
    bool by_broker = false;
};

// connection.blocked / connection.unblocked: the broker stops reading
// publishes while a resource alarm is on.
struct FlowBlocked {
    bool blocked = false;
    std::string reason;
};

using AmqpEvent = std::variant<Delivery, Returned, Confirm, ConsumerCancelled, FlowBlocked>;

// Turns the frames of one channel into whole events. A delivery arrives as a
// method frame, a header frame and body frames; everything is copied out, so
// the connection's frame buffers may be released after each frame.
class ContentAssembler final {
public:
    // Returns an event once one is complete. Frames idemq does not act on
    // (heartbeats, *-ok replies) return nullopt.
    std::optional<AmqpEvent> feed(const amqp_frame_t& frame);

private:
    std::optional<AmqpEvent> on_method(const amqp_method_t& method);
    std::optional<AmqpEvent> finish_if_complete();

    std::optional<std::variant<Delivery, Returned>> pending_;
    std::uint64_t expected_size_ = 0;
    bool header_seen_ = false;
};

}  // namespace idemq::detail
