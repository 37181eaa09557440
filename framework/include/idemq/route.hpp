#pragma once

#include <idemq/retry_policy.hpp>

#include <chrono>
#include <cstddef>
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

/// Group commit for a plain Handler: up to `max_messages` deliveries of the
/// route that are ready share one transaction and one COMMIT, each message in
/// a savepoint of its own. Every per-message guarantee holds: a message whose
/// handler fails is rolled back alone and takes its own retry or dead-letter
/// path; the others commit; each delivery is acked after the COMMIT. It trades
/// latency (up to `linger`, plus the group's handlers) for throughput.
struct GroupCommit {
    std::size_t max_messages = 1;         ///< 1: every message commits alone (the default); at most 64.
    std::chrono::milliseconds linger{2};  ///< How long a group's first message waits for more (0 to 1 s).
};

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
    RetryPolicy retry{};         ///< What happens when `handle` throws.
    GroupCommit group_commit{};  ///< Off by default; not for a BatchHandler (it has BatchOptions).
};

}  // namespace idemq
