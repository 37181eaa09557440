#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

namespace idemq::detail {

// Ends the process with `exit_code` unless disarmed within `bound`: the last
// resort of a shutdown whose handler threads do not return. Whatever blocks
// (a handler, a cancel request to an unreachable server) cannot hold it up:
// it runs on a thread of its own. `before_exit` runs first (flush the logs).
class ExitWatchdog final {
public:
    ExitWatchdog(std::chrono::milliseconds bound, int exit_code, std::function<void()> before_exit)
        : thread_([this, bound, exit_code, before_exit = std::move(before_exit)] {
              std::unique_lock lock(mutex_);
              if (wake_.wait_for(lock, bound, [this] { return disarmed_; })) return;
              before_exit();
              std::_Exit(exit_code);
          }) {}
    ~ExitWatchdog() {
        {
            std::lock_guard lock(mutex_);
            disarmed_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    ExitWatchdog(const ExitWatchdog&) = delete;
    ExitWatchdog& operator=(const ExitWatchdog&) = delete;

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    bool disarmed_ = false;
    std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace idemq::detail
