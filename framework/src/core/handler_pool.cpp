#include "core/handler_pool.hpp"

#include "common/log.hpp"

namespace idemq::detail {

HandlerPool::HandlerPool(int threads, const SessionFactory& make_session, Process process, ProcessBatch process_batch)
    : process_(std::move(process)), process_batch_(std::move(process_batch)) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        DatabaseSession session = make_session(i);
        cancellers_.push_back(session.canceller());
        {
            std::lock_guard lock(mutex_);
            ++running_;
        }
        threads_.emplace_back([this, stop = stop_.get_token(), session = std::move(session)]() mutable {
            run_thread(stop, session);
            std::lock_guard lock(mutex_);
            --running_;
            exited_.notify_all();
        });
    }
}

void HandlerPool::join() {
    request_stop();
    threads_.clear();  // std::jthread joins
}

void HandlerPool::submit(Job job) {
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

std::vector<Job> HandlerPool::take_pending() {
    std::lock_guard lock(mutex_);
    std::vector<Job> pending(std::make_move_iterator(jobs_.begin()), std::make_move_iterator(jobs_.end()));
    jobs_.clear();
    return pending;
}

void HandlerPool::request_stop() {
    {
        std::lock_guard lock(mutex_);
        jobs_.clear();
    }
    // Wakes every wait on the token: the queue, a batch's linger, the
    // backoff of a database outage.
    stop_.request_stop();
}

std::size_t HandlerPool::cancel_statements() {
    std::size_t sent = 0;
    for (const auto& canceller : cancellers_) {
        if (canceller->cancel()) ++sent;
    }
    return sent;
}

bool HandlerPool::join_for(std::chrono::milliseconds timeout) {
    {
        std::unique_lock lock(mutex_);
        if (!exited_.wait_for(lock, timeout, [this] { return running_ == 0; })) return false;
    }
    threads_.clear();  // joins threads that have returned already
    return true;
}

void HandlerPool::cancel_until_joined() {
    constexpr std::chrono::seconds kReportEvery{10};
    const std::size_t cancelled = cancel_statements();
    if (cancelled > 0) log().warn("cancelled {} running Postgres statements of unfinished handlers", cancelled);
    const auto started = std::chrono::steady_clock::now();
    auto next_report = started + kReportEvery;
    while (!join_for(std::chrono::milliseconds(250))) {
        (void)cancel_statements();
        if (std::chrono::steady_clock::now() >= next_report) {
            next_report += kReportEvery;
            // Only in-process (handle_signals off): the exit watchdog ends an
            // owned process long before this.
            log().error(
                "handler threads still running {} s after the shutdown grace period; their deliveries are "
                "back in the queue; waiting for the handlers to return",
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count());
        }
    }
}

std::vector<Job> HandlerPool::gather(Job first, std::unique_lock<std::mutex>& lock, const std::stop_token& stop) {
    std::vector<Job> batch;
    const std::size_t handler = first.handler_index;
    const std::size_t max = first.batch_max;
    const auto deadline = std::chrono::steady_clock::now() + first.batch_linger;
    batch.push_back(std::move(first));
    while (batch.size() < max && !stop.stop_requested()) {
        if (jobs_.empty()) {
            if (!wake_.wait_until(lock, stop, deadline, [this] { return !jobs_.empty(); })) break;
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

void HandlerPool::run_thread(const std::stop_token& stop, DatabaseSession& session) {
    for (;;) {
        std::vector<Job> batch;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, stop, [this] { return !jobs_.empty(); });
            if (stop.stop_requested()) return;
            Job job = std::move(jobs_.front());
            jobs_.pop_front();
            if (job.batch_max <= 1) {
                lock.unlock();
                process_(job, session, stop);
                continue;
            }
            batch = gather(std::move(job), lock, stop);
        }
        if (batch.size() == 1) {
            process_(batch.front(), session, stop);
        } else {
            process_batch_(batch, session, stop);
        }
    }
}

}  // namespace idemq::detail
