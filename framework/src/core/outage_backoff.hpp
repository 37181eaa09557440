#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace idemq::detail {

// Sleeps up to `duration`, checking `stopping` every 20 ms; false as soon as
// it is set.
inline bool sleep_unless_stopping(std::chrono::steady_clock::duration duration, const std::atomic<bool>& stopping) {
    const auto wake = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < wake) {
        if (stopping.load()) return false;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(20), wake - std::chrono::steady_clock::now()));
    }
    return !stopping.load();
}

// The pause between tries after a lost Postgres connection, for single
// deliveries and batches alike: 100 ms longer after each loss, at most 2 s,
// so a server that accepts connections but breaks each one is not hammered,
// and never in the way of a shutdown.
class OutageBackoff final {
public:
    explicit OutageBackoff(const std::atomic<bool>& stopping) : stopping_(stopping) {}

    // False when the worker is stopping: give the delivery back instead.
    [[nodiscard]] bool wait() {
        losses_ = std::min(losses_ + 1, kMaxSteps);
        return sleep_unless_stopping(kStep * losses_, stopping_);
    }

private:
    static constexpr int kMaxSteps = 20;
    static constexpr std::chrono::milliseconds kStep{100};

    const std::atomic<bool>& stopping_;
    int losses_ = 0;
};

}  // namespace idemq::detail
