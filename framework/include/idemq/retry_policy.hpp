#pragma once

#include <chrono>
#include <string_view>

namespace idemq {

/// How a handler's failures are retried. Attempt 1 is the first delivery.
/// Attempts 2 to 1 + immediate_retries run at once on the same thread, the
/// message held unacked, after a short backoff. The following
/// `delayed_retries` attempts each come back through the broker after
/// delay n (n = 1, 2, …) = random(0, min(delayed_cap, delayed_base × 2^(n-1)))
/// ("full jitter"). After the last attempt the message is dead-lettered with
/// reason `retries-exhausted`. Defaults: 2 immediate, 8 delayed, base 1 s,
/// cap 1 h: 11 attempts within about 4 minutes. Raise `delayed_retries` and
/// `delayed_base` for a horizon of hours or days (docs/configuration.md).
struct RetryPolicy {
    int immediate_retries = 2;
    std::chrono::milliseconds immediate_backoff{100};  ///< Base of the in-process backoff (doubles, full jitter).
    int delayed_retries = 8;
    std::chrono::milliseconds delayed_base{1'000};
    std::chrono::milliseconds delayed_cap{3'600'000};  ///< Up to 30 days.
    /// Full jitter spreads retries of many messages so a recovering service is
    /// not hit by all of them at once. Turn it off only for a fixed schedule.
    bool jitter = true;
    /// By default an exception other than PermanentError is retried. Set this
    /// to dead-letter unknown exceptions at once; TransientError, Postgres
    /// serialization failures and deadlocks are retried regardless.
    bool unknown_errors_are_permanent = false;

    [[nodiscard]] int max_attempts() const noexcept { return 1 + immediate_retries + delayed_retries; }

    /// Throws ConfigError naming the handler and the field.
    void validate(std::string_view handler) const;
};

}  // namespace idemq
