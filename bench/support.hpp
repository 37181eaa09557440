#pragma once

// What every idemq-bench scenario shares: private databases, queues filled
// with confirms, an idemq worker run on a thread of its own.

#include <idemq/idemq.hpp>

#include <pthread.h>
#include <pqxx/connection>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"

namespace bench {

using Clock = std::chrono::steady_clock;
using idemq::detail::AmqpConnection;
using idemq::detail::OwnedProperties;

// IDEMQ_AMQP_URL and IDEMQ_DATABASE_URL, set by main().
extern std::string base_amqp, base_db;

std::string unique(const std::string& prefix);
double seconds_since(Clock::time_point start);

struct Message {
    std::string id;
    std::string body;
};

// `count` messages, `duplicate_percent` of them copies of an earlier one.
std::vector<Message> make_messages(std::size_t count, int duplicate_percent);

// A database of its own, with the inbox and the payments tables, dropped at
// the end.
class Database {
public:
    Database();
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    [[nodiscard]] const std::string& url() const { return url_; }

private:
    std::string name_;
    std::string url_;
};

// The benchmark's broker connections: base_amqp, no heartbeat.
AmqpConnection::Settings broker_settings(const std::string& connection_name);
AmqpConnection connect(const std::string& name);
// Declares `queue` and publishes `messages` to it with confirms; the seconds it took.
double publish_all(const std::string& queue, const std::vector<Message>& messages, bool stamp = false);
// A bare rabbitmq-c consumer acking `count` deliveries of `queue`; the seconds it took.
double raw_consume(const std::string& queue, std::size_t count);

idemq::WorkerOptions worker_options(const Database& db, int concurrency, std::size_t batch_size = 0);

// `worker.run()` on a thread of its own; stop() ends it and rethrows what
// made it fail.
class RunningWorker {
public:
    explicit RunningWorker(idemq::Worker& worker)
        : worker_(worker), thread_([this] {
              try {
                  worker_.run();
              } catch (...) {
                  error_ = std::current_exception();
                  failed_ = true;
              }
          }) {}
    ~RunningWorker() {
        worker_.request_stop();
        if (thread_.joinable()) thread_.join();
    }
    RunningWorker(const RunningWorker&) = delete;
    RunningWorker& operator=(const RunningWorker&) = delete;

    [[nodiscard]] bool failed() const { return failed_; }
    // CPU time of the thread running worker.run(): the loop thread.
    [[nodiscard]] double loop_cpu_seconds() {
        clockid_t clock{};
        timespec used{};
        if (pthread_getcpuclockid(thread_.native_handle(), &clock) != 0 || clock_gettime(clock, &used) != 0) return 0;
        return static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) / 1e9;
    }
    void stop() {
        worker_.request_stop();
        thread_.join();
        if (error_) std::rethrow_exception(error_);
    }

private:
    idemq::Worker& worker_;
    std::exception_ptr error_;
    std::atomic<bool> failed_{false};
    std::thread thread_;  // last: starts once the rest exists
};

// How the worker commits: alone, in batches of a BatchHandler, or in
// groups of the plain handler (Route::group_commit).
struct Sharing {
    std::size_t batch = 0;
    std::size_t group = 0;
};

struct IdemqResult {
    double seconds = 0;
    std::vector<double> latencies_ms;
};

// Publish -> COMMIT of every booked charge, in ms: Postgres's commit
// timestamp of its ledger row (track_commit_timestamp) minus the wall-clock
// time it was first published at.
std::vector<double> commit_latencies(const Database& db, const std::unordered_map<std::string, std::int64_t>& sent);

// Runs a worker with the payments handler over `messages`: pre-loaded into
// the queue (throughput), or published at `rate` per second while it runs
// (latency). In `database` when given, else in one of its own.
IdemqResult idemq_run(int concurrency, const std::vector<Message>& messages, double rate = 0, Sharing sharing = {},
                      const Database* database = nullptr);

double percentile(std::vector<double> values, double p);
long peak_rss_kb();

long long scalar(pqxx::connection& connection, const std::string& sql);
// Polls `sql` (a count) until it reaches `target`; the seconds since `start`.
double wait_for_count(pqxx::connection& connection, const std::string& sql, long long target, Clock::time_point start,
                      const std::function<bool()>& failed = {});

}  // namespace bench
