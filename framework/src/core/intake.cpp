#include "core/intake.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "amqp/idemq_headers.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

// A delayed message this close to its time is handled rather than sent round again.
constexpr milliseconds kEarlySlack{50};
// A not-before this much beyond a route's longest delayed retry was not
// written by idemq (or by a clock far off): it is handled now.
constexpr milliseconds kNotBeforeSlack{60'000};

// The Message a delivery stands for. Everything that reads its properties
// comes first, so when it throws the body is still in the delivery.
std::shared_ptr<const Message> message_of(Delivery& delivery, const Route& route) {
    const OwnedProperties& props = delivery.properties;
    // A crafted attempt count is kept within what the route can reach: a
    // huge one means the last attempt, a negative one the first.
    const std::int64_t max_attempts = std::max(1, route.retry.max_attempts());
    const int attempt =
        static_cast<int>(std::clamp<std::int64_t>(props.int_header(header::kAttempt).value_or(1), 1, max_attempts));
    Headers headers = props.headers_as_text();
    // A retried message comes back from a delay tier through the default
    // exchange; the handler still sees where it was first published. On a
    // message published to a real exchange these headers are someone
    // else's claim and are not believed.
    const bool via_default_exchange = delivery.exchange.empty();
    const auto original = [&](std::string_view name, const std::string& fallback) {
        const auto it = headers.find(name);
        return via_default_exchange && it != headers.end() ? it->second : fallback;
    };
    std::string exchange = original(header::kOriginalExchange, delivery.exchange);
    std::string routing_key = original(header::kOriginalRoutingKey, delivery.routing_key);
    Message::Fields fields{.body = {},
                           .message_id = props.message_id(),
                           .correlation_id = props.correlation_id(),
                           .content_type = props.content_type(),
                           .headers = std::move(headers),
                           .exchange = std::move(exchange),
                           .routing_key = std::move(routing_key),
                           .redelivered = delivery.redelivered,
                           .attempt = attempt};
    fields.body = std::move(delivery.body);
    return std::make_shared<const Message>(std::move(fields));
}

}  // namespace

Admission admit_delivery(Delivery& delivery, const Route& route, const std::vector<milliseconds>& tiers,
                         std::size_t max_body_bytes, std::int64_t now_ms) {
    Admission admission;
    std::optional<std::int64_t> not_before;
    try {
        admission.message = message_of(delivery, route);
        not_before = delivery.properties.int_header(header::kNotBefore);
    } catch (const std::exception& e) {
        // What cannot become a Message is a failure of that message.
        admission.refusal = Failure{.reason = std::string(reason::kMalformedMessage),
                                    .error = fmt::format("the delivery cannot be read as a message: {}", e.what()),
                                    .error_type = exception_type_name(e)};
        admission.message = std::make_shared<const Message>(Message::Fields{.body = std::move(delivery.body),
                                                                            .exchange = delivery.exchange,
                                                                            .routing_key = delivery.routing_key,
                                                                            .redelivered = delivery.redelivered});
        return admission;
    }
    // A delayed retry that came back early goes round again, but never for
    // longer than the route's own longest delay: a farther not-before was
    // not written by idemq.
    const RetryPolicy& retry = route.retry;
    const milliseconds longest = retry.delayed_retries > 0 ? retry.delayed_cap : milliseconds(0);
    if (not_before && !tiers.empty() && longest.count() > 0 && *not_before > now_ms) {
        const milliseconds remaining(*not_before - now_ms);
        if (remaining > kEarlySlack && remaining <= longest + kNotBeforeSlack) {
            admission.delay_again = remaining;
            return admission;
        }
    }
    const std::size_t size = admission.message->body().size();
    if (size > max_body_bytes) {
        admission.refusal =
            Failure{.reason = std::string(reason::kTooLarge),
                    .error = fmt::format("body is {} bytes; IDEMQ_MAX_BODY_BYTES allows {}", size, max_body_bytes),
                    .error_type = "idemq"};
    }
    return admission;
}

}  // namespace idemq::detail
