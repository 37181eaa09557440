#include "core/worker_pool.hpp"

namespace idemq::detail {

WorkerPool::WorkerPool(int threads, const SessionFactory& make_session, Process process, ProcessBatch process_batch)
    : process_(std::move(process)), process_batch_(std::move(process_batch)) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        DatabaseSession session = make_session(i);
        cancellers_.push_back(session.canceller());
        {
            std::lock_guard lock(mutex_);
            ++running_;
        }
        threads_.emplace_back([this, session = std::move(session)]() mutable {
            run_thread(std::move(session));
            std::lock_guard lock(mutex_);
            --running_;
            exited_.notify_all();
        });
    }
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::submit(Job job) {
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

std::vector<Job> WorkerPool::take_pending() {
    std::lock_guard lock(mutex_);
    std::vector<Job> pending(std::make_move_iterator(jobs_.begin()), std::make_move_iterator(jobs_.end()));
    jobs_.clear();
    return pending;
}

void WorkerPool::request_stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        jobs_.clear();
    }
    wake_.notify_all();
}

std::size_t WorkerPool::cancel_statements() {
    std::size_t sent = 0;
    for (const auto& canceller : cancellers_) {
        if (canceller->cancel()) ++sent;
    }
    return sent;
}

bool WorkerPool::join_for(std::chrono::milliseconds timeout) {
    {
        std::unique_lock lock(mutex_);
        if (!exited_.wait_for(lock, timeout, [this] { return running_ == 0; })) return false;
    }
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    return true;
}

void WorkerPool::stop() {
    request_stop();
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
}

std::vector<Job> WorkerPool::gather(Job first, std::unique_lock<std::mutex>& lock) {
    std::vector<Job> batch;
    const std::size_t handler = first.handler_index;
    const std::size_t max = first.batch_max;
    const auto deadline = std::chrono::steady_clock::now() + first.batch_linger;
    batch.push_back(std::move(first));
    while (batch.size() < max && !stopping_.load()) {
        if (jobs_.empty()) {
            if (!wake_.wait_until(lock, deadline, [this] { return stopping_.load() || !jobs_.empty(); })) break;
            continue;
        }
        if (jobs_.front().handler_index != handler || jobs_.front().batch_max <= 1) {
            // The wake-up may have been meant for this job: pass it on.
            wake_.notify_one();
            break;
        }
        batch.push_back(std::move(jobs_.front()));
        jobs_.pop_front();
    }
    return batch;
}

void WorkerPool::run_thread(DatabaseSession session) {
    for (;;) {
        std::vector<Job> batch;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_.load() || !jobs_.empty(); });
            if (stopping_.load()) return;
            Job job = std::move(jobs_.front());
            jobs_.pop_front();
            if (job.batch_max > 1) {
                batch = gather(std::move(job), lock);
            } else {
                lock.unlock();
                process_(job, session, stopping_);
                continue;
            }
        }
        if (batch.size() == 1) {
            process_(batch.front(), session, stopping_);
        } else {
            process_batch_(batch, session, stopping_);
        }
    }
}

}  // namespace idemq::detail
