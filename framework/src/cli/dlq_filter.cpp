#include "cli/dlq_filter.hpp"

#include <idemq/errors.hpp>

#include <algorithm>

namespace idemq::detail {

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
