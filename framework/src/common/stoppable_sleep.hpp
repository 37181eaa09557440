#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace idemq::detail {

// Sleeps for `duration`, or less when a stop is requested meanwhile (it
// wakes at once then). False when stopped: the caller gives up what it waits
// for.
inline bool sleep_unless_stopped(std::chrono::steady_clock::duration duration, const std::stop_token& stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, duration, [] { return false; });
    return !stop.stop_requested();
}

}  // namespace idemq::detail
