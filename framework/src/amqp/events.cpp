#include "amqp/events.hpp"

#include <idemq/errors.hpp>

#include <amqp_framing.h>
#include <fmt/format.h>

#include <algorithm>

namespace idemq::detail {
namespace {

// The broker announces a body's size in its content header; a body is
// reserved up to this much at once and grows frame by frame beyond it, so an
// announced size never allocates memory that no frame has brought yet.
constexpr std::uint64_t kMaxReserve = 1U << 20;

}  // namespace

std::optional<AmqpEvent> ContentAssembler::feed(const amqp_frame_t& frame) {
    switch (frame.frame_type) {
        case AMQP_FRAME_METHOD: return on_method(frame.payload.method);
        case AMQP_FRAME_HEADER: {
            if (!pending_ || header_seen_) throw BrokerError("AMQP protocol error: unexpected content header", true);
            const auto& props = *static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
            expected_size_ = frame.payload.properties.body_size;
            header_seen_ = true;
            std::visit(
                [&](auto& content) {
                    content.properties = OwnedProperties(props);
                    content.body.reserve(static_cast<std::size_t>(std::min(expected_size_, kMaxReserve)));
                },
                *pending_);
            return finish_if_complete();
        }
        case AMQP_FRAME_BODY: {
            if (!pending_ || !header_seen_) throw BrokerError("AMQP protocol error: unexpected content body", true);
            const amqp_bytes_t fragment = frame.payload.body_fragment;
            std::visit(
                [&](auto& content) {
                    // More than announced is a protocol error; never append it.
                    if (content.body.size() + fragment.len > expected_size_) {
                        throw BrokerError("AMQP protocol error: body longer than announced", true);
                    }
                    if (fragment.len > 0) content.body.append(static_cast<const char*>(fragment.bytes), fragment.len);
                },
                *pending_);
            return finish_if_complete();
        }
        default: return std::nullopt;
    }
}

std::optional<AmqpEvent> ContentAssembler::finish_if_complete() {
    const std::size_t have = std::visit([](const auto& content) { return content.body.size(); }, *pending_);
    if (have < expected_size_) return std::nullopt;
    if (have > expected_size_) throw BrokerError("AMQP protocol error: body longer than announced", true);
    AmqpEvent event = std::visit([](auto& content) -> AmqpEvent { return std::move(content); }, *pending_);
    pending_.reset();
    header_seen_ = false;
    expected_size_ = 0;
    return event;
}

std::optional<AmqpEvent> ContentAssembler::on_method(const amqp_method_t& method) {
    if (pending_) throw BrokerError("AMQP protocol error: method frame inside a message's content", true);
    switch (method.id) {
        case AMQP_BASIC_DELIVER_METHOD: {
            const auto& m = *static_cast<const amqp_basic_deliver_t*>(method.decoded);
            Delivery delivery;
            delivery.consumer_tag = to_string(m.consumer_tag);
            delivery.delivery_tag = m.delivery_tag;
            delivery.redelivered = m.redelivered != 0;
            delivery.exchange = to_string(m.exchange);
            delivery.routing_key = to_string(m.routing_key);
            pending_.emplace(std::move(delivery));
            return std::nullopt;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            const auto& m = *static_cast<const amqp_basic_return_t*>(method.decoded);
            Returned returned;
            returned.reply_code = m.reply_code;
            returned.reply_text = to_string(m.reply_text);
            returned.exchange = to_string(m.exchange);
            returned.routing_key = to_string(m.routing_key);
            pending_.emplace(std::move(returned));
            return std::nullopt;
        }
        case AMQP_BASIC_ACK_METHOD: {
            const auto& m = *static_cast<const amqp_basic_ack_t*>(method.decoded);
            return Confirm{.sequence = m.delivery_tag, .multiple = m.multiple != 0, .ack = true};
        }
        case AMQP_BASIC_NACK_METHOD: {
            const auto& m = *static_cast<const amqp_basic_nack_t*>(method.decoded);
            return Confirm{.sequence = m.delivery_tag, .multiple = m.multiple != 0, .ack = false};
        }
        case AMQP_BASIC_CANCEL_METHOD: {
            const auto& m = *static_cast<const amqp_basic_cancel_t*>(method.decoded);
            return ConsumerCancelled{.consumer_tag = to_string(m.consumer_tag), .by_broker = true};
        }
        case AMQP_BASIC_CANCEL_OK_METHOD: {
            const auto& m = *static_cast<const amqp_basic_cancel_ok_t*>(method.decoded);
            return ConsumerCancelled{.consumer_tag = to_string(m.consumer_tag), .by_broker = false};
        }
        case AMQP_CONNECTION_BLOCKED_METHOD: {
            const auto& m = *static_cast<const amqp_connection_blocked_t*>(method.decoded);
            return FlowBlocked{.blocked = true, .reason = to_string(m.reason)};
        }
        case AMQP_CONNECTION_UNBLOCKED_METHOD: return FlowBlocked{.blocked = false, .reason = {}};
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const auto& m = *static_cast<const amqp_channel_close_t*>(method.decoded);
            throw BrokerError(
                fmt::format("the broker closed the channel: {} {}", m.reply_code, to_string(m.reply_text)), false);
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const auto& m = *static_cast<const amqp_connection_close_t*>(method.decoded);
            throw BrokerError(
                fmt::format("the broker closed the connection: {} {}", m.reply_code, to_string(m.reply_text)), true);
        }
        default: return std::nullopt;
    }
}

std::string describe(const Returned& returned) {
    return fmt::format("the broker could not route it to '{}' via exchange '{}': {} {}", returned.routing_key,
                       returned.exchange, returned.reply_code, returned.reply_text);
}

}  // namespace idemq::detail
