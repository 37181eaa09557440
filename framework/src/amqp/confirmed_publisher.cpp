#include "amqp/confirmed_publisher.hpp"

#include <fmt/format.h>

#include "amqp/idemq_headers.hpp"
#include "common/log.hpp"

namespace idemq::detail {
ConfirmedPublisher::ConfirmedPublisher(AmqpConnection& connection) : connection_(connection) {
    connection_.enable_publisher_confirms();
}

void ConfirmedPublisher::publish(std::string exchange, std::string routing_key, OwnedProperties properties,
                                 SharedBody body, Callback done) {
    Held held{std::move(exchange), std::move(routing_key), std::move(properties), std::move(body), std::move(done)};
    if (blocked_) {
        held_.push_back(std::move(held));
        return;
    }
    send(std::move(held));
}

void ConfirmedPublisher::send(Held held) {
    const std::uint64_t sequence = next_sequence_++;
    const OwnedProperties tagged =
        held.properties.with_headers({{std::string(header::kPublishSequence), static_cast<std::int64_t>(sequence)}});
    const auto it = pending_.emplace(sequence, Pending{std::move(held.done), std::nullopt}).first;
    try {
        connection_.publish(held.exchange, held.routing_key, true, tagged, held.body.bytes);
    } catch (const UnencodablePublish& e) {
        // Nothing was sent, so the broker will not confirm this sequence
        // number: take it back, and fail only this publish.
        Callback done = std::move(it->second.done);
        pending_.erase(it);
        --next_sequence_;
        done(fmt::format("it cannot be published: {}", e.what()));
    }
}

void ConfirmedPublisher::on_event(AmqpEvent& event) {
    if (auto* confirm = std::get_if<Confirm>(&event)) {
        settle(confirm->sequence, confirm->multiple, confirm->ack);
    } else if (auto* returned = std::get_if<Returned>(&event)) {
        const auto sequence = returned->properties.int_header(header::kPublishSequence);
        if (!sequence) return;
        const auto it = pending_.find(static_cast<std::uint64_t>(*sequence));
        if (it == pending_.end()) return;
        it->second.returned = describe(*returned);
    } else if (auto* flow = std::get_if<FlowBlocked>(&event)) {
        blocked_ = flow->blocked;
        if (blocked_) {
            log().warn("the broker blocked publishing ({}); dead-letter publishes wait", flow->reason);
            return;
        }
        log().info("the broker unblocked publishing");
        while (!held_.empty() && !blocked_) {
            Held held = std::move(held_.front());
            held_.pop_front();
            send(std::move(held));
        }
    }
}

void ConfirmedPublisher::settle(std::uint64_t sequence, bool multiple, bool ack) {
    auto end = multiple ? pending_.upper_bound(sequence) : pending_.find(sequence);
    auto begin = multiple ? pending_.begin() : end;
    if (!multiple) {
        if (end == pending_.end()) return;
        ++end;
    }
    // Callbacks may publish again; take the settled entries out first.
    std::vector<Pending> settled;
    for (auto it = begin; it != end; ++it) settled.push_back(std::move(it->second));
    pending_.erase(begin, end);
    for (auto& entry : settled) {
        if (!ack) {
            entry.done("the broker refused it (basic.nack)");
        } else {
            entry.done(std::move(entry.returned));
        }
    }
}

void ConfirmedPublisher::fail_all(const std::string& why) {
    std::vector<Callback> callbacks;
    for (auto& [sequence, entry] : pending_) callbacks.push_back(std::move(entry.done));
    for (auto& held : held_) callbacks.push_back(std::move(held.done));
    pending_.clear();
    held_.clear();
    for (auto& done : callbacks) done(why);
}

BlockingPublisher::BlockingPublisher(const AmqpConnection::Settings& settings, std::size_t window)
    : connection_(settings), publisher_(connection_), window_(window) {}

void BlockingPublisher::publish(std::string exchange, std::string routing_key, OwnedProperties properties,
                                std::string body, ConfirmedPublisher::Callback done) {
    publisher_.publish(std::move(exchange), std::move(routing_key), std::move(properties),
                       SharedBody::own(std::move(body)), std::move(done));
    take_events();
    wait_until(window_);
}

void BlockingPublisher::take_events() {
    while (auto event = connection_.poll_event()) publisher_.on_event(*event);
}

void BlockingPublisher::wait_until(std::size_t outstanding, std::chrono::milliseconds silence) {
    while (publisher_.outstanding() > outstanding) {
        auto event = connection_.wait_event(silence);
        if (!event) {
            throw BrokerError(fmt::format("no publisher confirm from the broker within {} ms", silence.count()), true);
        }
        publisher_.on_event(*event);
    }
}

}  // namespace idemq::detail
