#pragma once

#include <idemq/message.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "database_session.hpp"

namespace idemq::detail {

// A delivery handed to a handler thread: everything in it is owned.
struct Job {
    std::uint64_t delivery_tag = 0;
    std::uint64_t generation = 0;  // of the broker connection it came on
    std::size_t handler_index = 0;
    std::shared_ptr<const Message> message;
};

// Handler threads, each with its own DatabaseSession. Jobs wait in a FIFO
// queue; broker prefetch bounds its length. Not libuv's thread pool: that one
// is global and shared with file and DNS work.
class WorkerPool final {
public:
    // Runs on a handler thread. `stopping` tells a long wait to give up.
    using Process = std::function<void(Job&, DatabaseSession&, const std::atomic<bool>& stopping)>;
    using SessionFactory = std::function<DatabaseSession(int thread_index)>;

    WorkerPool(int threads, const SessionFactory& make_session, Process process);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Thread-safe.
    void submit(Job job);
    // Removes and returns the jobs no thread has started.
    [[nodiscard]] std::vector<Job> take_pending();
    // Tells threads to give up waits, discards pending jobs, joins. Idempotent.
    void stop();

private:
    void run_thread(DatabaseSession session);

    Process process_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    std::atomic<bool> stopping_{false};
    std::vector<std::thread> threads_;
};

}  // namespace idemq::detail
