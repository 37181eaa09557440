#include <doctest/doctest.h>

#include "outbox/relay.hpp"

using idemq::detail::longest_retry_schedule;
using idemq::detail::RelaySettings;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("the relay's longest retry schedule sums the waits between a row's first and last attempt") {
    // 10 attempts, 9 waits: 1 + 2 + … + 256 s.
    CHECK(longest_retry_schedule(RelaySettings{}) == seconds(511));
    CHECK(longest_retry_schedule(RelaySettings{.max_attempts = 1}) == milliseconds(0));
    // Past 256 s every wait is the 5 min cap: 511 s + 11 × 300 s.
    CHECK(longest_retry_schedule(RelaySettings{.max_attempts = 21}) == seconds(511 + 11 * 300));
}

TEST_CASE("a worker's relay takes its attempts from the worker's options") {
    const auto settings =
        idemq::detail::RelaySettings::from({.outbox_max_attempts = 3, .outbox_retention = seconds(7200)});
    CHECK(settings.max_attempts == 3);
    CHECK(settings.retention == seconds(7200));
    CHECK(longest_retry_schedule(settings) == seconds(3));
}
