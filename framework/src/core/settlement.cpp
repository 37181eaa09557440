#include "core/settlement.hpp"

#include "amqp/dead_letter.hpp"
#include "amqp/topology.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "core/retry_schedule.hpp"

namespace idemq::detail {

Settlement::Settlement(const std::vector<RegisteredHandler>& handlers,
                       const std::vector<std::chrono::milliseconds>& tiers, Telemetry& telemetry,
                       std::function<void()> on_settled, std::function<void()> request_flush,
                       AckCoalescer::Options acks)
    : handlers_(handlers),
      tiers_(tiers),
      telemetry_(telemetry),
      on_settled_(std::move(on_settled)),
      request_flush_(std::move(request_flush)),
      acks_(acks),
      per_handler_(handlers.size(), 0) {}

void Settlement::attach(SettlementChannel& broker, std::uint64_t generation) noexcept {
    broker_ = &broker;
    generation_ = generation;
    // Tags start again at 1 on a new channel.
    acks_.reset();
}

void Settlement::close() noexcept {
    // Committed work acked before the connection closes spares a redelivery
    // (which the inbox would absorb): worth trying, never required.
    if (broker_ != nullptr) {
        try {
            flush(AckCoalescer::Clock::now(), true);
        } catch (const std::exception& e) {
            log().warn("could not send the last acks before closing: {}; those deliveries return to the queue",
                       e.what());
        }
    }
    broker_ = nullptr;
}

void Settlement::forget_all() noexcept {
    broker_ = nullptr;
    // Nothing of the old channel may be acked on the next one.
    acks_.reset();
    in_flight_.clear();
    for (std::size_t h = 0; h < per_handler_.size(); ++h) telemetry_.in_flight(h, per_handler_[h] = 0);
}

void Settlement::admit(std::uint64_t tag, std::size_t handler_index, std::shared_ptr<const Message> message,
                       OwnedProperties properties) {
    in_flight_.insert_or_assign(tag, Entry{.handler_index = handler_index,
                                           .message = std::move(message),
                                           .properties = std::move(properties),
                                           .received_at = std::chrono::steady_clock::now()});
    acks_.delivered(tag);
    telemetry_.in_flight(handler_index, ++per_handler_[handler_index]);
}

void Settlement::refuse(std::uint64_t tag) {
    acks_.delivered(tag);
    acks_.done(tag);
    if (broker_ != nullptr) broker_->reject(tag, true);
}

void Settlement::settle(std::uint64_t tag, const Verdict& verdict) {
    const auto it = in_flight_.find(tag);
    if (it == in_flight_.end() || broker_ == nullptr || it->second.ack_ready) return;
    const std::size_t handler = it->second.handler_index;
    switch (verdict.kind()) {
        case Verdict::Kind::kAck: ack(tag); break;
        case Verdict::Kind::kDuplicate:
            telemetry_.duplicate(handler);
            log_message(spdlog::level::info, tags_for(handlers_[handler].route.handler, *it->second.message),
                        "duplicate delivery acked without running the handler");
            ack(tag);
            break;
        case Verdict::Kind::kDeadLetter: dead_letter(tag, verdict); break;
        case Verdict::Kind::kRetryLater: retry_later(tag, verdict); break;
        case Verdict::Kind::kRelease: release(tag); break;
    }
}

void Settlement::publish_then_ack(std::uint64_t tag, std::string exchange, std::string routing_key,
                                  OwnedProperties properties, std::string what, std::function<void()> on_confirmed) {
    const Entry& entry = in_flight_.at(tag);
    // The copy shares the delivery's body: held once, however it travels.
    SharedBody body{entry.message, entry.message->body()};
    broker_->publish(std::move(exchange), std::move(routing_key), std::move(properties), std::move(body),
                     [this, tag, generation = generation_, what = std::move(what),
                      on_confirmed = std::move(on_confirmed)](std::optional<std::string> error) {
                         // A confirm of a lost or closed connection: the broker has the original back.
                         if (broker_ == nullptr || generation != generation_) return;
                         if (error) {
                             log().error("could not {} delivery {}: {}; it goes back to the queue", what, tag, *error);
                             release(tag);
                             return;
                         }
                         on_confirmed();
                         ack(tag);
                     });
}

void Settlement::dead_letter(std::uint64_t tag, const Verdict& verdict) {
    const Entry& entry = in_flight_.at(tag);
    const Route& route = handlers_[entry.handler_index].route;
    const Message& message = *entry.message;
    const Failure& failure = verdict.failure();
    const FailureStamp& stamp = verdict.stamp();
    const bool unexpected = failure.reason == reason::kKeyConflict || failure.reason == reason::kCrashLoop;
    log_message(unexpected ? spdlog::level::err : spdlog::level::warn, tags_for(route.handler, message),
                "dead-lettering to '{}' after {} attempt(s): {}: {}", dead_letter_queue_name(route.queue),
                stamp.attempt, failure.reason, first_line(failure.error));
    OwnedProperties properties =
        entry.properties.for_republish(dead_letter_headers(failure, {.handler = route.handler,
                                                                     .original_exchange = message.exchange(),
                                                                     .original_routing_key = message.routing_key(),
                                                                     .attempt = stamp.attempt,
                                                                     .first_failure_at = stamp.first_failure_at,
                                                                     .last_failure_at = stamp.last_failure_at}),
                                       republish_budget(broker_->frame_max()));
    publish_then_ack(
        tag, "", dead_letter_queue_name(route.queue), std::move(properties), "dead-letter",
        [this, handler = entry.handler_index, why = failure.reason] { telemetry_.dead_lettered(handler, why); });
}

void Settlement::retry_later(std::uint64_t tag, const Verdict& verdict) {
    const Entry& entry = in_flight_.at(tag);
    const Route& route = handlers_[entry.handler_index].route;
    const Message& message = *entry.message;
    const Failure& failure = verdict.failure();
    const FailureStamp& stamp = verdict.stamp();
    log_message(spdlog::level::info, tags_for(route.handler, message),
                "attempt {} of {} failed ({}: {}); retrying in {} ms", stamp.attempt, route.retry.max_attempts(),
                failure.error_type, first_line(failure.error), verdict.retry_delay().count());
    OwnedProperties properties = entry.properties.for_republish(
        retry_headers(failure,
                      {.handler = route.handler,
                       .original_exchange = message.exchange(),
                       .original_routing_key = message.routing_key(),
                       .attempt = stamp.attempt,
                       .first_failure_at = stamp.first_failure_at,
                       .last_failure_at = stamp.last_failure_at},
                      stamp.attempt + 1, std::chrono::system_clock::now() + verdict.retry_delay()),
        republish_budget(broker_->frame_max()));
    publish_then_ack(tag, tier_name(next_hop(verdict.retry_delay(), tiers_)), route.queue, std::move(properties),
                     "schedule a retry of",
                     [this, handler = entry.handler_index] { telemetry_.delayed_retry(handler); });
}

void Settlement::delay_again(std::uint64_t tag, std::chrono::milliseconds remaining) {
    const Entry& entry = in_flight_.at(tag);
    const Route& route = handlers_[entry.handler_index].route;
    OwnedProperties properties = entry.properties.for_republish({}, republish_budget(broker_->frame_max()));
    publish_then_ack(tag, tier_name(next_hop(remaining, tiers_)), route.queue, std::move(properties),
                     "send on a delayed retry of", [] {});
}

void Settlement::forget(Table::iterator entry) {
    const std::size_t handler = entry->second.handler_index;
    telemetry_.in_flight(handler, --per_handler_[handler]);
    in_flight_.erase(entry);
}

void Settlement::ack(std::uint64_t tag) {
    const auto entry = in_flight_.find(tag);
    if (entry == in_flight_.end() || entry->second.ack_ready) return;
    entry->second.ack_ready = true;
    acks_.ready(tag, AckCoalescer::Clock::now());
    request_flush_();
}

void Settlement::flush(AckCoalescer::Clock::time_point now, bool everything) {
    if (broker_ == nullptr) return;
    const AckCoalescer::Plan plan = acks_.plan(now, everything);
    if (plan.acked.empty()) return;
    for (const AckCoalescer::Frame& frame : plan.frames) broker_->ack(frame.tag, frame.multiple);
    telemetry_.acks_sent(plan.frames.size(), plan.acked.size());
    for (const std::uint64_t tag : plan.acked) {
        const auto entry = in_flight_.find(tag);
        if (entry == in_flight_.end()) continue;
        telemetry_.settled(entry->second.handler_index,
                           std::chrono::duration<double>(now - entry->second.received_at).count());
        forget(entry);
    }
    on_settled_();
}

void Settlement::release(std::uint64_t tag) {
    acks_.done(tag);
    broker_->reject(tag, true);
    const auto entry = in_flight_.find(tag);
    if (entry != in_flight_.end()) {
        telemetry_.released(entry->second.handler_index);
        forget(entry);
    }
    on_settled_();
}

void Settlement::warn_slow(std::chrono::milliseconds after) {
    const auto now = std::chrono::steady_clock::now();
    for (auto& [tag, entry] : in_flight_) {
        if (entry.reported_slow || now - entry.received_at < after) continue;
        entry.reported_slow = true;
        log_message(spdlog::level::warn, tags_for(handlers_[entry.handler_index].route.handler, *entry.message),
                    "still in flight after {} ms (IDEMQ_HANDLER_WARN_MS)",
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - entry.received_at).count());
    }
}

}  // namespace idemq::detail
