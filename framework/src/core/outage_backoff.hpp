#pragma once

#include <algorithm>
#include <chrono>
#include <stop_token>

#include "common/stoppable_sleep.hpp"

namespace idemq::detail {

// The pause between tries after a lost Postgres connection, for single
// deliveries and batches alike: 100 ms longer after each loss, at most 2 s,
// so a server that accepts connections but breaks each one is not hammered,
// and never in the way of a shutdown.
class OutageBackoff final {
public:
    explicit OutageBackoff(std::stop_token stop) : stop_(std::move(stop)) {}

    // False when the worker is stopping: give the delivery back instead.
    [[nodiscard]] bool wait() {
        losses_ = std::min(losses_ + 1, kMaxSteps);
        return sleep_unless_stopped(kStep * losses_, stop_);
    }

private:
    static constexpr int kMaxSteps = 20;
    static constexpr std::chrono::milliseconds kStep{100};

    std::stop_token stop_;
    int losses_ = 0;
};

}  // namespace idemq::detail
