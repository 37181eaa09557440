#pragma once

#include <idemq/worker.hpp>

#include "testing/worker_thread.hpp"

namespace test {

// An idemq::Worker running in this process on a thread of its own, stopped
// gracefully when the object goes away. Tests run side by side: each takes
// a free metrics port unless it chose one.
class RunningWorker final : public idemq::detail::WorkerThread {
public:
    RunningWorker(idemq::WorkerOptions options, const std::function<void(idemq::Worker&)>& setup)
        : WorkerThread(with_free_metrics_port(std::move(options)), setup) {}

private:
    static idemq::WorkerOptions with_free_metrics_port(idemq::WorkerOptions options) {
        if (options.metrics_address == idemq::WorkerOptions::kDefaultMetricsAddress) {
            options.metrics_address = "127.0.0.1:0";
        }
        return options;
    }
};

}  // namespace test
