#include "amqp/dead_letter_view.hpp"

#include <exception>
#include <string_view>

#include "amqp/idemq_headers.hpp"

namespace idemq::detail {
namespace {

std::string text(const Headers& headers, std::string_view name) {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

std::int64_t number(const Headers& headers, std::string_view name) {
    try {
        return std::stoll(text(headers, name));
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace

DeadLetterView view_of(const Delivery& delivery) {
    DeadLetterView view;
    view.headers = delivery.properties.headers_as_text();
    view.message_id = delivery.properties.message_id();
    view.correlation_id = delivery.properties.correlation_id();
    view.reason = text(view.headers, header::kReason);
    view.error_type = text(view.headers, header::kErrorType);
    view.error = text(view.headers, header::kError);
    view.handler = text(view.headers, header::kHandler);
    view.failed_at = text(view.headers, header::kFailedAt);
    view.original_exchange = text(view.headers, header::kOriginalExchange);
    view.original_routing_key = text(view.headers, header::kOriginalRoutingKey);
    view.attempts = number(view.headers, header::kAttempts);
    view.replay_count = number(view.headers, header::kReplayCount);
    view.size = delivery.body.size();
    return view;
}

}  // namespace idemq::detail
