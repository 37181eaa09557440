#include "core/retry_schedule.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace idemq::detail {
namespace {

constexpr milliseconds kLongestDelay{30LL * 24 * 3600 * 1000};
constexpr int kMaxRetries = 100;

// A delay before the next attempt: full jitter, when the policy wants it.
milliseconds retry_delay(const RetryPolicy& policy, milliseconds base, milliseconds cap, int exponent,
                         std::mt19937_64& random) {
    return jittered(backoff_ceiling(base, cap, exponent), policy.jitter ? Jitter::kFull : Jitter::kNone, random);
}

}  // namespace

RetryDecision decide_retry(const RetryPolicy& policy, int failed_attempt, std::mt19937_64& random) {
    if (failed_attempt >= policy.max_attempts()) return {.kind = RetryDecision::Kind::kDeadLetter, .delay = {}};
    if (failed_attempt <= policy.immediate_retries) {
        // In-process retries stay short: the delivery is held unacked meanwhile.
        const milliseconds cap = policy.immediate_backoff * 8;
        return {.kind = RetryDecision::Kind::kImmediate,
                .delay = retry_delay(policy, policy.immediate_backoff, cap, failed_attempt - 1, random)};
    }
    const int delayed = failed_attempt - policy.immediate_retries;  // 1 for the first delayed retry
    return {.kind = RetryDecision::Kind::kDelayed,
            .delay = retry_delay(policy, policy.delayed_base, policy.delayed_cap, delayed - 1, random)};
}

std::vector<milliseconds> delay_tiers(milliseconds longest) {
    std::vector<milliseconds> tiers{kShortestTier};
    while (tiers.back() < longest) tiers.push_back(tiers.back() * 2);
    return tiers;
}

milliseconds next_hop(milliseconds remaining, const std::vector<milliseconds>& tiers) {
    milliseconds hop = tiers.front();
    for (const milliseconds tier : tiers) {
        if (tier <= remaining) hop = tier;
    }
    return hop;
}

}  // namespace idemq::detail

namespace idemq {

void RetryPolicy::validate(std::string_view handler) const {
    const auto fail = [&](std::string_view what) {
        throw ConfigError(fmt::format("handler '{}': RetryPolicy.{}", handler, what));
    };
    if (immediate_retries < 0 || immediate_retries > detail::kMaxRetries) fail("immediate_retries must be 0 to 100");
    if (delayed_retries < 0 || delayed_retries > detail::kMaxRetries) fail("delayed_retries must be 0 to 100");
    if (immediate_backoff.count() < 0 || immediate_backoff > std::chrono::seconds(10)) {
        fail("immediate_backoff must be 0 to 10 s: longer waits belong in delayed retries");
    }
    if (delayed_base.count() < 1) fail("delayed_base must be at least 1 ms");
    if (delayed_cap < delayed_base) fail("delayed_cap must not be below delayed_base");
    if (delayed_cap > detail::kLongestDelay) fail("delayed_cap must be at most 30 days");
}

}  // namespace idemq
