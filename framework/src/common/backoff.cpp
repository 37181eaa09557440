#include "common/backoff.hpp"

#include <algorithm>
#include <cstdint>

namespace idemq::detail {

using std::chrono::milliseconds;

milliseconds backoff_ceiling(milliseconds base, milliseconds cap, int exponent) {
    milliseconds ceiling = base;
    for (int i = 0; i < exponent && ceiling < cap; ++i) ceiling *= 2;
    return std::min(ceiling, cap);
}

milliseconds jittered(milliseconds ceiling, Jitter jitter, std::mt19937_64& random) {
    const auto pick = [&](std::int64_t low) {
        return milliseconds(std::uniform_int_distribution<std::int64_t>(low, ceiling.count())(random));
    };
    switch (jitter) {
        case Jitter::kNone: return ceiling;
        case Jitter::kFull: return pick(0);
        case Jitter::kEqual: return pick(ceiling.count() / 2);
    }
    return ceiling;
}

milliseconds longest_backoff(milliseconds base, milliseconds cap, int waits) {
    milliseconds total{0};
    for (int n = 0; n < waits; ++n) total += backoff_ceiling(base, cap, n);
    return total;
}

}  // namespace idemq::detail
