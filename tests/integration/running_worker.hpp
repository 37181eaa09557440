#pragma once

#include <idemq/worker.hpp>

#include <exception>
#include <functional>
#include <thread>

namespace test {

// An idemq::Worker running in this process on a thread of its own, stopped
// gracefully when the object goes away.
class RunningWorker {
public:
    RunningWorker(idemq::WorkerOptions options, const std::function<void(idemq::Worker&)>& setup)
        : worker_([&] {
              options.handle_signals = false;
              // Tests run side by side: each takes a free port.
              if (options.metrics_address == idemq::WorkerOptions::kDefaultMetricsAddress) {
                  options.metrics_address = "127.0.0.1:0";
              }
              return options;
          }()) {
        setup(worker_);
        thread_ = std::thread([this] {
            try {
                final_ = worker_.run();
            } catch (...) {
                error_ = std::current_exception();
            }
        });
    }
    ~RunningWorker() { stop(); }
    RunningWorker(const RunningWorker&) = delete;
    RunningWorker& operator=(const RunningWorker&) = delete;

    [[nodiscard]] idemq::WorkerStats stats() const { return worker_.stats(); }
    [[nodiscard]] int metrics_port() const { return worker_.metrics_port(); }

    // Stops gracefully; rethrows what run() threw.
    idemq::WorkerStats stop() {
        if (thread_.joinable()) {
            worker_.request_stop();
            thread_.join();
            if (error_) std::rethrow_exception(error_);
        }
        return final_;
    }

private:
    idemq::Worker worker_;
    std::thread thread_;
    idemq::WorkerStats final_;
    std::exception_ptr error_;
};

}  // namespace test
