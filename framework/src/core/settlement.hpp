#pragma once

#include <idemq/message.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "amqp/broker_session.hpp"
#include "amqp/properties.hpp"
#include "core/ack_coalescer.hpp"
#include "core/registered_handler.hpp"
#include "core/verdict.hpp"
#include "ops/telemetry.hpp"

namespace idemq::detail {

// Every delivery between its receipt and its end, and the three ways it can
// end: an ack; a broker-confirmed publish of a copy (to the DLQ or a delay
// tier) and then the ack; or a reject that gives it back to the queue. The
// original's properties are kept here so a copy is the message as it came.
// Acks are not sent at once: a delivery whose ack is due is marked ready and
// `request_flush` is called; flush() then sends them, coalesced into
// multiple acks where the tags allow (core/ack_coalescer). Until its ack is
// sent a delivery is still in flight. Rejects are sent at once.
// Loop thread only. Broker calls throw BrokerError: the caller loses the
// connection then, and every delivery with it.
class Settlement final {
public:
    Settlement(const std::vector<RegisteredHandler>& handlers, const std::vector<std::chrono::milliseconds>& tiers,
               Telemetry& telemetry, std::function<void()> on_settled, std::function<void()> request_flush,
               AckCoalescer::Options acks = {});

    // The connection deliveries arrive on from now, and its generation.
    void attach(SettlementChannel& broker, std::uint64_t generation) noexcept;
    // The connection is gone: the broker requeues what it had delivered, so
    // every entry is void; late confirms and verdicts find nothing.
    void forget_all() noexcept;
    // The worker is closing: what is ready is acked first, if the
    // connection still takes it; then pending confirms are failed and
    // nothing more is acked.
    void close() noexcept;

    // Records a delivery that arrived on the attached connection.
    void admit(std::uint64_t tag, std::size_t handler_index, std::shared_ptr<const Message> message,
               OwnedProperties properties);
    // Ends the delivery as `verdict` says. An unknown tag is ignored.
    void settle(std::uint64_t tag, const Verdict& verdict);
    // Sends a delayed retry that came back early round its delay tiers again.
    void delay_again(std::uint64_t tag, std::chrono::milliseconds remaining);
    // Gives the delivery back to the queue untouched.
    void release(std::uint64_t tag);
    // Gives back a delivery that arrived and was not admitted, so that its
    // tag does not stop the runs of acks after it.
    void refuse(std::uint64_t tag);

    // Sends the acks that are due; `everything` sends every ready one, held
    // behind a gap or not. Runs on_settled once if any delivery was acked.
    void flush(AckCoalescer::Clock::time_point now, bool everything = false);
    // When acks held behind a gap are due, if any are held.
    [[nodiscard]] std::optional<AckCoalescer::Clock::time_point> next_flush() { return acks_.next_deadline(); }

    [[nodiscard]] std::size_t size() const noexcept { return in_flight_.size(); }
    [[nodiscard]] bool empty() const noexcept { return in_flight_.empty(); }
    // Logs each delivery in flight longer than `after`, once.
    void warn_slow(std::chrono::milliseconds after);

private:
    struct Entry {
        std::size_t handler_index = 0;
        std::shared_ptr<const Message> message;
        OwnedProperties properties;
        std::chrono::steady_clock::time_point received_at;
        bool reported_slow = false;
        bool ack_ready = false;
    };
    using Table = std::unordered_map<std::uint64_t, Entry>;

    void dead_letter(std::uint64_t tag, const Verdict& verdict);
    void retry_later(std::uint64_t tag, const Verdict& verdict);
    void publish_then_ack(std::uint64_t tag, std::string exchange, std::string routing_key, OwnedProperties properties,
                          std::string what, std::function<void()> on_confirmed);
    void ack(std::uint64_t tag);
    void forget(Table::iterator entry);

    const std::vector<RegisteredHandler>& handlers_;
    const std::vector<std::chrono::milliseconds>& tiers_;
    Telemetry& telemetry_;
    std::function<void()> on_settled_;
    std::function<void()> request_flush_;
    AckCoalescer acks_;
    SettlementChannel* broker_ = nullptr;
    std::uint64_t generation_ = 0;
    Table in_flight_;
    std::vector<int> per_handler_;
};

}  // namespace idemq::detail
