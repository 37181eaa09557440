#pragma once

#include <idemq/retry_policy.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace idemq {

/// The exchange types a Route can declare: a misspelt type is a compile
/// error, not a broker error at start.
enum class ExchangeType { kDirect, kFanout, kTopic, kHeaders };

/// The AMQP name of `type`: "direct", "fanout", "topic" or "headers".
[[nodiscard]] constexpr std::string_view to_string(ExchangeType type) noexcept {
    switch (type) {
        case ExchangeType::kDirect: return "direct";
        case ExchangeType::kFanout: return "fanout";
        case ExchangeType::kTopic: return "topic";
        case ExchangeType::kHeaders: return "headers";
    }
    return {};
}

/// Where a handler's messages come from. Every name is declared idempotently
/// at start: a durable `exchange` of `exchange_type`, a durable `queue` bound
/// to it with each of `routing_keys`, and the durable dead-letter queue
/// `<queue>.dlq`.
struct Route {
    std::string handler{};   ///< Handler name: scopes idempotency keys in the inbox. Required.
    std::string queue{};     ///< Defaults to the handler name.
    std::string exchange{};  ///< Empty: consume `queue` only, bind nothing.
    ExchangeType exchange_type = ExchangeType::kTopic;
    std::vector<std::string> routing_keys{};
    RetryPolicy retry{};  ///< What happens when `handle` throws.
};

}  // namespace idemq
