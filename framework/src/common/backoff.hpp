#pragma once

#include <chrono>
#include <random>

namespace idemq::detail {

// Exponential backoff with jitter, in one place: handler retries
// (core/retry_schedule), the outbox relay's refused publishes, and the
// reconnects to Postgres and the broker.

// min(cap, base × 2^exponent), without overflow.
[[nodiscard]] std::chrono::milliseconds backoff_ceiling(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                                        int exponent);

enum class Jitter {
    kNone,   // the ceiling itself
    kFull,   // uniform in [0, ceiling]: spreads retries the most
    kEqual,  // uniform in [ceiling / 2, ceiling]: spread, yet at least half the wait
};

// A wait of at most `ceiling`, spread as `jitter` says.
[[nodiscard]] std::chrono::milliseconds jittered(std::chrono::milliseconds ceiling, Jitter jitter,
                                                 std::mt19937_64& random);

// The longest `waits` successive backoff waits can take in all (exponents
// 0 … waits − 1): the sum of their ceilings, which no jitter exceeds.
[[nodiscard]] std::chrono::milliseconds longest_backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                                        int waits);

}  // namespace idemq::detail
