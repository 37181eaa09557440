#pragma once

#include <idemq/retry_policy.hpp>

#include <string>
#include <vector>

namespace idemq {

/// Where a handler's messages come from. Every name is declared idempotently
/// at start: a durable `exchange` of `exchange_type`, a durable `queue` bound
/// to it with each of `routing_keys`, and the durable dead-letter queue
/// `<queue>.dlq`.
struct Route {
    std::string handler{};   ///< Handler name: scopes idempotency keys in the inbox. Required.
    std::string queue{};     ///< Defaults to the handler name.
    std::string exchange{};  ///< Empty: consume `queue` only, bind nothing.
    std::string exchange_type = "topic";
    std::vector<std::string> routing_keys{};
    RetryPolicy retry{};  ///< What happens when `handle` throws.
};

}  // namespace idemq
