#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

#include "core/handler_pool.hpp"

using idemq::detail::DatabaseSession;
using idemq::detail::HandlerPool;
using idemq::detail::Job;

namespace {

// Sessions that never connect: the jobs here do not touch the database.
DatabaseSession unused_session(int) {
    return DatabaseSession({.url = "postgresql://unused", .schema = "idemq", .application_name = "test"});
}

Job job(std::uint64_t tag, std::size_t handler, std::size_t batch_max, std::chrono::milliseconds linger) {
    return {.delivery_tag = tag,
            .handler_index = handler,
            .message = std::make_shared<const idemq::Message>(idemq::Message::Fields{}),
            .batch_max = batch_max,
            .batch_linger = linger};
}

// What the pool handed to its threads, as batches of delivery tags.
struct Record {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::vector<std::uint64_t>> runs;

    void add(std::vector<std::uint64_t> tags) {
        {
            std::lock_guard lock(mutex);
            runs.push_back(std::move(tags));
        }
        changed.notify_all();
    }
    bool wait_for_runs(std::size_t n) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(30), [&] { return runs.size() >= n; });
    }
};

}  // namespace

TEST_CASE("jobs of a batch handler at the head of the queue share a batch, others run alone") {
    Record record;
    std::mutex gate;
    std::unique_lock hold(gate);  // the first job waits here, so the rest queue up behind it
    HandlerPool pool(
        1, unused_session,
        [&](Job& j, DatabaseSession&, const std::stop_token&) {
            if (j.delivery_tag == 1) std::lock_guard wait(gate);
            record.add({j.delivery_tag});
        },
        [&](std::vector<Job>& jobs, DatabaseSession&, const std::stop_token&) {
            std::vector<std::uint64_t> tags;
            for (const auto& j : jobs) tags.push_back(j.delivery_tag);
            record.add(tags);
        });
    const auto linger = std::chrono::seconds(30);  // a full batch never waits for it
    pool.submit(job(1, 1, 0, {}));
    for (std::uint64_t tag = 2; tag <= 6; ++tag) pool.submit(job(tag, 0, 3, linger));
    pool.submit(job(7, 1, 0, {}));
    hold.unlock();
    REQUIRE(record.wait_for_runs(3));
    std::lock_guard lock(record.mutex);
    CHECK(record.runs[0] == std::vector<std::uint64_t>{1});
    CHECK(record.runs[1] == std::vector<std::uint64_t>{2, 3, 4});
    // Tags 5 and 6 are followed by a job of another handler: they go without
    // waiting out the linger, and that job runs alone after them.
    CHECK(record.runs[2] == std::vector<std::uint64_t>{5, 6});
}

TEST_CASE("a stop wakes a thread lingering for more of a batch at once, and drops what is queued") {
    Record record;
    HandlerPool pool(
        1, unused_session, [&](Job& j, DatabaseSession&, const std::stop_token&) { record.add({j.delivery_tag}); },
        [&](std::vector<Job>&, DatabaseSession&, const std::stop_token&) { record.add({0}); });
    pool.submit(job(1, 0, 10, std::chrono::hours(1)));
    // The thread is lingering for nine more jobs of handler 0 when the stop comes.
    pool.request_stop();
    CHECK(pool.join_for(std::chrono::seconds(20)));
    pool.submit(job(2, 0, 0, {}));
    CHECK(pool.take_pending().size() == 1);  // nobody takes jobs after a stop
}
