#include <doctest/doctest.h>

#include <algorithm>

#include "common/backoff.hpp"

using namespace idemq::detail;
using std::chrono::milliseconds;

namespace {

// The lowest and highest of many jittered waits, and their mean.
struct Spread {
    milliseconds lowest{milliseconds::max()};
    milliseconds highest{0};
    double mean = 0;
};

Spread sample(milliseconds ceiling, Jitter jitter) {
    std::mt19937_64 random(42);
    constexpr int kSamples = 10'000;
    Spread spread;
    double sum = 0;
    for (int i = 0; i < kSamples; ++i) {
        const milliseconds wait = jittered(ceiling, jitter, random);
        spread.lowest = std::min(spread.lowest, wait);
        spread.highest = std::max(spread.highest, wait);
        sum += static_cast<double>(wait.count());
    }
    spread.mean = sum / kSamples;
    return spread;
}

}  // namespace

TEST_CASE("the backoff ceiling doubles from the base up to the cap") {
    CHECK(backoff_ceiling(milliseconds(1000), milliseconds(3'600'000), 0) == milliseconds(1000));
    CHECK(backoff_ceiling(milliseconds(1000), milliseconds(3'600'000), 3) == milliseconds(8000));
    CHECK(backoff_ceiling(milliseconds(1000), milliseconds(3'600'000), 12) == milliseconds(3'600'000));
    CHECK(backoff_ceiling(milliseconds(1000), milliseconds(3'600'000), 1000) == milliseconds(3'600'000));
}

TEST_CASE("full jitter spreads waits over [0, ceiling]") {
    const milliseconds ceiling = backoff_ceiling(milliseconds(1000), milliseconds(60'000), 4);  // 16 s
    const Spread spread = sample(ceiling, Jitter::kFull);
    CHECK(spread.lowest >= milliseconds(0));
    CHECK(spread.lowest < ceiling / 50);
    CHECK(spread.highest <= ceiling);
    CHECK(spread.highest > ceiling - ceiling / 50);
    CHECK(spread.mean == doctest::Approx(ceiling.count() / 2.0).epsilon(0.03));
}

TEST_CASE("equal jitter spreads waits over [ceiling / 2, ceiling]") {
    const Spread spread = sample(milliseconds(16'000), Jitter::kEqual);
    CHECK(spread.lowest >= milliseconds(8000));
    CHECK(spread.lowest < milliseconds(8000 + 320));
    CHECK(spread.highest <= milliseconds(16'000));
    CHECK(spread.highest > milliseconds(16'000 - 320));
    CHECK(spread.mean == doctest::Approx(12'000).epsilon(0.03));
}

TEST_CASE("no jitter waits the ceiling itself") {
    std::mt19937_64 random(1);
    CHECK(jittered(milliseconds(700), Jitter::kNone, random) == milliseconds(700));
}

TEST_CASE("the longest backoff is the sum of the ceilings of its waits") {
    CHECK(longest_backoff(milliseconds(1000), milliseconds(300'000), 0) == milliseconds(0));
    // 1 + 2 + 4 s.
    CHECK(longest_backoff(milliseconds(1000), milliseconds(300'000), 3) == milliseconds(7000));
    // The relay's defaults for 10 attempts: 1, 2, … 256 s, then the 5 min cap.
    CHECK(longest_backoff(milliseconds(1000), milliseconds(300'000), 10) == milliseconds(511'000 + 300'000));
}
