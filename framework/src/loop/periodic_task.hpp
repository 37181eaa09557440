#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <thread>

#include "common/stoppable_sleep.hpp"

namespace idemq::detail {

// A thread that runs `step` every `interval` until destroyed; the wait is
// interrupted at once on destruction, and `step` gets the thread's stop
// token, so a long step can stop early too. `step` must not throw.
class PeriodicTask final {
public:
    PeriodicTask(std::chrono::milliseconds interval, std::function<void(const std::stop_token&)> step)
        : interval_(interval), step_(std::move(step)), thread_([this](std::stop_token stop) { run(stop); }) {}
    PeriodicTask(const PeriodicTask&) = delete;
    PeriodicTask& operator=(const PeriodicTask&) = delete;
    // std::jthread requests the stop and joins.

private:
    void run(const std::stop_token& stop) {
        while (!stop.stop_requested()) {
            step_(stop);
            sleep_unless_stopped(interval_, stop);
        }
    }

    std::chrono::milliseconds interval_;
    std::function<void(const std::stop_token&)> step_;
    std::jthread thread_;  // last: starts once everything above exists
};

}  // namespace idemq::detail
