#pragma once

#include <idemq/retry_policy.hpp>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "common/backoff.hpp"

namespace idemq::detail {

using std::chrono::milliseconds;

// What to do after attempt `failed_attempt` (1-based) failed transiently.
struct RetryDecision {
    enum class Kind { kImmediate, kDelayed, kDeadLetter };
    Kind kind = Kind::kDeadLetter;
    milliseconds delay{0};
};
// Waits are full-jittered (RetryPolicy::jitter) backoff: see common/backoff.
[[nodiscard]] RetryDecision decide_retry(const RetryPolicy& policy, int failed_attempt, std::mt19937_64& random);

// Delayed retries wait in queues with one fixed TTL each ("tiers"), so a
// short delay never waits behind a long one: RabbitMQ expires messages only
// at the head of a queue. Tiers double from 250 ms. A delay longer than one
// tier takes several hops: an early arrival is sent on for the remainder.
inline constexpr milliseconds kShortestTier{250};

// The tiers needed for delays up to `longest`.
[[nodiscard]] std::vector<milliseconds> delay_tiers(milliseconds longest);
// The tier to wait in next: the longest not exceeding `remaining` (at least the shortest).
[[nodiscard]] milliseconds next_hop(milliseconds remaining, const std::vector<milliseconds>& tiers);

}  // namespace idemq::detail
