#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "amqp/dead_letter_view.hpp"

namespace idemq::detail {

// The selection of `dlq` commands. Filters combine with AND; several
// --message-id values combine with OR.
struct DlqFilter {
    std::vector<std::string> message_ids{};
    std::optional<std::string> reason{};
    std::optional<std::string> error_type{};
    std::optional<std::string> since{};  // compared with x-idemq-failed-at (RFC 3339, UTC)
    std::optional<std::string> until{};
    std::vector<std::pair<std::string, std::string>> headers{};  // k=v, exact text match
    bool all = false;

    // True when no filter narrows the selection (so only --all may act).
    [[nodiscard]] bool selects_everything() const noexcept;
    [[nodiscard]] bool matches(const DeadLetterView& message) const;
};

// Parses "k=v"; throws ConfigError naming the flag otherwise.
[[nodiscard]] std::pair<std::string, std::string> parse_header_filter(const std::string& text);

}  // namespace idemq::detail
