#pragma once

#include <idemq/message.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "inbox/database_session.hpp"

namespace idemq::detail {

// A delivery handed to a handler thread: everything in it is owned.
struct Job {
    std::uint64_t delivery_tag = 0;
    std::uint64_t generation = 0;  // of the broker connection it came on
    std::size_t handler_index = 0;
    std::shared_ptr<const Message> message;
    // For a batch handler: how many jobs of its handler may share a
    // transaction, and how long to wait for more. 0: handled alone.
    std::size_t batch_max = 0;
    std::chrono::milliseconds batch_linger{0};
};

// The threads handlers run on, each with its own DatabaseSession. Jobs wait
// in a FIFO queue; broker prefetch bounds its length. A batch handler's jobs
// at the front of the queue are gathered into one batch. Not libuv's thread
// pool: that one is global and shared with file and DNS work.
class HandlerPool final {
public:
    // Runs on a handler thread. `stop` tells a long wait to give up.
    using Process = std::function<void(Job&, DatabaseSession&, const std::stop_token& stop)>;
    using ProcessBatch = std::function<void(std::vector<Job>&, DatabaseSession&, const std::stop_token& stop)>;
    using SessionFactory = std::function<DatabaseSession(int thread_index)>;

    HandlerPool(int threads, const SessionFactory& make_session, Process process, ProcessBatch process_batch);
    ~HandlerPool() { join(); }
    HandlerPool(const HandlerPool&) = delete;
    HandlerPool& operator=(const HandlerPool&) = delete;

    // Thread-safe.
    void submit(Job job);
    // Removes and returns the jobs no thread has started.
    [[nodiscard]] std::vector<Job> take_pending();
    // Tells threads to give up waits and discards pending jobs; returns at
    // once. Idempotent. Any thread.
    void request_stop();
    // Asks Postgres to cancel the statement each thread's session is
    // running (a handler waiting on a lock). Returns how many were sent.
    std::size_t cancel_statements();
    // After request_stop(): waits up to `timeout` for every thread to return,
    // then joins them. False when some are still running.
    [[nodiscard]] bool join_for(std::chrono::milliseconds timeout);
    // request_stop(), then joins, however long the handlers take. Idempotent.
    void join();
    // After the shutdown grace: cancels every thread's running statement
    // every 250 ms until all threads returned (a handler waiting on a lock or
    // a slow statement returns once Postgres cancels it; one that retries it
    // is cancelled again), logging the wait every 10 s, then joins.
    void cancel_until_joined();

private:
    void run_thread(const std::stop_token& stop, DatabaseSession& session);
    // With the lock held: `first` plus the batchable jobs of its handler at
    // the front of the queue, waiting up to its linger for more.
    std::vector<Job> gather(Job first, std::unique_lock<std::mutex>& lock, const std::stop_token& stop);

    Process process_;
    ProcessBatch process_batch_;
    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::deque<Job> jobs_;
    std::condition_variable exited_;
    int running_ = 0;  // threads not yet returned, under mutex_
    std::vector<std::shared_ptr<StatementCanceller>> cancellers_;
    // One source for every thread: a stop reaches them all at once.
    std::stop_source stop_;
    std::vector<std::jthread> threads_;  // last: they use everything above
};

}  // namespace idemq::detail
