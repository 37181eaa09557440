#pragma once

#include <idemq/worker.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <thread>
#include <utility>

namespace idemq::detail {

// An idemq::Worker running in this process on a thread of its own, stopped
// gracefully when the object goes away: the hostile suite's worker, and the
// tests'. Signals stay the host's (handle_signals is forced off).
class WorkerThread {
public:
    WorkerThread(WorkerOptions options, const std::function<void(Worker&)>& setup)
        : worker_([&] {
              options.handle_signals = false;
              return std::move(options);
          }()) {
        setup(worker_);
        thread_ = std::thread([this] {
            try {
                final_ = worker_.run();
            } catch (...) {
                error_ = std::current_exception();
                failed_ = true;
            }
        });
    }
    ~WorkerThread() {
        try {
            (void)stop();
        } catch (...) {  // NOLINT(bugprone-empty-catch): run()'s error was reported to whoever asked with stop()
        }
    }
    WorkerThread(const WorkerThread&) = delete;
    WorkerThread& operator=(const WorkerThread&) = delete;

    [[nodiscard]] WorkerStats stats() const { return worker_.stats(); }
    [[nodiscard]] int metrics_port() const { return worker_.metrics_port(); }
    // True once run() has thrown; stop() rethrows it.
    [[nodiscard]] bool failed() const noexcept { return failed_; }

    // Stops gracefully and returns what run() returned; rethrows what it threw.
    WorkerStats stop() {
        if (thread_.joinable()) {
            worker_.request_stop();
            thread_.join();
        }
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
        return final_;
    }

private:
    Worker worker_;
    std::thread thread_;
    WorkerStats final_;
    std::exception_ptr error_;  // written by the worker thread before failed_, read after join
    std::atomic<bool> failed_{false};
};

}  // namespace idemq::detail
