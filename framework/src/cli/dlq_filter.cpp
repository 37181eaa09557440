#include "cli/dlq_filter.hpp"

#include <idemq/errors.hpp>

#include <algorithm>

#include "amqp/dead_letter.hpp"

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

bool DlqFilter::selects_everything() const noexcept {
    return message_ids.empty() && !reason && !error_type && !since && !until && headers.empty();
}

bool DlqFilter::matches(const DeadLetterView& message) const {
    if (!message_ids.empty() &&
        std::find(message_ids.begin(), message_ids.end(), message.message_id) == message_ids.end()) {
        return false;
    }
    if (reason && message.reason != *reason) return false;
    if (error_type && message.error_type != *error_type) return false;
    // RFC 3339 UTC timestamps of one format order as text; a bare date is a
    // prefix of every time on that day, so --until DAY excludes that day.
    if (since && message.failed_at < *since) return false;
    if (until && message.failed_at >= *until) return false;
    for (const auto& [key, value] : headers) {
        const auto it = message.headers.find(key);
        if (it == message.headers.end() || it->second != value) return false;
    }
    return true;
}

std::pair<std::string, std::string> parse_header_filter(const std::string& text) {
    const auto equals = text.find('=');
    if (equals == std::string::npos || equals == 0) {
        throw ConfigError("--header wants NAME=VALUE, got '" + text + "'");
    }
    return {text.substr(0, equals), text.substr(equals + 1)};
}

}  // namespace idemq::detail
