#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace idemq::detail {

// Wakes the relay of this process the moment a handler's COMMIT staged rows,
// instead of at its next poll. Process-wide: staging code and relay meet here
// without knowing each other. Other processes' relays find the rows by
// polling.
class OutboxDoorbell final {
public:
    [[nodiscard]] static OutboxDoorbell& instance() {
        static OutboxDoorbell doorbell;
        return doorbell;
    }

    // Any thread; cheap when nobody waits.
    void ring() {
        {
            std::lock_guard lock(mutex_);
            rung_ = true;
        }
        wake_.notify_all();
    }

    // Waits until rung (since the last wait), `timeout` passes or a stop is
    // requested.
    void wait(std::chrono::milliseconds timeout, const std::stop_token& stop) {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, stop, timeout, [this] { return rung_; });
        rung_ = false;
    }

private:
    OutboxDoorbell() = default;

    std::mutex mutex_;
    std::condition_variable_any wake_;
    bool rung_ = false;
};

}  // namespace idemq::detail
