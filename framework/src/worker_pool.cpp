#include "worker_pool.hpp"

namespace idemq::detail {

WorkerPool::WorkerPool(int threads, const SessionFactory& make_session, Process process)
    : process_(std::move(process)) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        threads_.emplace_back([this, session = make_session(i)]() mutable { run_thread(std::move(session)); });
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

void WorkerPool::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        jobs_.clear();
    }
    wake_.notify_all();
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
}

void WorkerPool::run_thread(DatabaseSession session) {
    for (;;) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_.load() || !jobs_.empty(); });
            if (stopping_.load()) return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        process_(job, session, stopping_);
    }
}

}  // namespace idemq::detail
