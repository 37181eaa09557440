#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace idemq::detail {

// A thread that runs `step` every `interval` until destroyed; the wait is
// interrupted at once on destruction, and `step` is told through the flag it
// gets, so a long step can stop early too. `step` must not throw.
class PeriodicTask final {
public:
    PeriodicTask(std::chrono::milliseconds interval, std::function<void(const std::atomic<bool>& stopping)> step)
        : interval_(interval), step_(std::move(step)), thread_([this] { run(); }) {}
    ~PeriodicTask() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        stop_flag_ = true;
        wake_.notify_all();
        thread_.join();
    }
    PeriodicTask(const PeriodicTask&) = delete;
    PeriodicTask& operator=(const PeriodicTask&) = delete;

private:
    void run() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            lock.unlock();
            step_(stop_flag_);
            lock.lock();
            wake_.wait_for(lock, interval_, [this] { return stopping_; });
        }
    }

    std::chrono::milliseconds interval_;
    std::function<void(const std::atomic<bool>&)> step_;
    std::atomic<bool> stop_flag_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once everything above exists
};

}  // namespace idemq::detail
