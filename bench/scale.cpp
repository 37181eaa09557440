// The scenarios at scale: what a long run does to a worker's memory and to
// `dlq replay`'s, and what a large inbox does to throughput.
#include "scale.hpp"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "amqp/idemq_headers.hpp"
#include "charge_handler.hpp"
#include "common/fingerprint.hpp"
#include "support.hpp"

extern char** environ;

namespace bench {
namespace {

// VmRSS of process `pid` ("self" when 0), in KiB; 0 once it is gone.
long rss_kb(pid_t pid = 0) {
    std::ifstream status(pid == 0 ? std::string("/proc/self/status") : fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return 0;
}

// Samples a process's RSS and a progress count every second on a thread of
// its own, and prints a line at every tenth of `total`.
class RssSampler {
public:
    RssSampler(pid_t pid, std::size_t total, std::function<std::size_t()> progress)
        : pid_(pid), total_(total), progress_(std::move(progress)), thread_([this] { run(); }) {}
    ~RssSampler() { stop(); }
    RssSampler(const RssSampler&) = delete;
    RssSampler& operator=(const RssSampler&) = delete;

    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    // RSS at the first sample at or past each fraction of `total` (start: the
    // first sample with any progress, when the process is at work; end: the
    // last), the largest, and the growth from start to end and from 10% to
    // end. Call after stop().
    [[nodiscard]] nlohmann::json figures() const {
        nlohmann::json out = nlohmann::json::object();
        if (samples_.empty()) return out;
        const auto at = [&](double fraction) {
            for (const auto& s : samples_) {
                if (static_cast<double>(s.progress) >= fraction * static_cast<double>(total_)) return s.rss_kb;
            }
            return samples_.back().rss_kb;
        };
        long largest = 0;
        for (const auto& s : samples_) largest = std::max(largest, s.rss_kb);
        const auto working =
            std::find_if(samples_.begin(), samples_.end(), [](const Sample& s) { return s.progress > 0; });
        const long start = (working != samples_.end() ? *working : samples_.front()).rss_kb;
        const long tenth = at(0.1);
        const long end = samples_.back().rss_kb;
        out["rss_kb"] = {{"start", start}, {"at_10_percent", tenth}, {"at_50_percent", at(0.5)},
                         {"end", end},     {"max", largest},         {"samples", samples_.size()}};
        out["rss_growth"] = static_cast<double>(end - start) / static_cast<double>(start);
        out["rss_growth_from_10_percent"] = static_cast<double>(end - tenth) / static_cast<double>(tenth);
        return out;
    }

private:
    struct Sample {
        double seconds;
        std::size_t progress;
        long rss_kb;
    };

    void run() {
        const auto begin = Clock::now();
        std::size_t next_print = 0;
        std::unique_lock lock(mutex_);
        for (auto at = begin;; at += std::chrono::seconds(1)) {
            const std::size_t done = progress_();
            const long rss = rss_kb(pid_);
            if (rss > 0) samples_.push_back({seconds_since(begin), done, rss});
            if (done >= next_print) {
                fmt::print("  {:>7.0f} s  {:>9} of {}  RSS {:>7} KiB\n", seconds_since(begin), done, total_, rss);
                std::fflush(stdout);
                next_print =
                    done - done % std::max<std::size_t>(1, total_ / 10) + std::max<std::size_t>(1, total_ / 10);
            }
            if (wake_.wait_until(lock, at + std::chrono::seconds(1), [&] { return stopping_; })) break;
        }
        // The last word: the state at the end.
        const long rss = rss_kb(pid_);
        if (rss > 0) samples_.push_back({seconds_since(begin), progress_(), rss});
    }

    pid_t pid_;
    std::size_t total_;
    std::function<std::size_t()> progress_;
    std::vector<Sample> samples_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest exists
};

std::string charge_body(std::size_t i) {
    return fmt::format(R"({{"account": "A{}", "amount_cents": {}}})", i % 50, 1 + i % 97);
}

}  // namespace

nlohmann::json soak(std::size_t count, double rate, int concurrency) {
    Database db;
    const std::string queue = unique("bench.soak");
    idemq::Worker worker(worker_options(db, concurrency));
    worker.add_handler({.handler = "payments.charge", .queue = queue},
                       std::make_unique<payments::ChargeHandler>(payments::Events::kNone));
    RunningWorker running(worker);
    idemq::detail::BlockingPublisher publisher(broker_settings("idemq-bench soak publisher"));
    publisher.connection().declare_queue(queue);
    const auto fail_on_error = [](std::optional<std::string> error) {
        if (error) throw std::runtime_error("publish failed: " + *error);
    };
    // The first charge alone: the samples start once the worker consumes.
    publisher.publish("", queue, OwnedProperties::make("s-warm-up", "", "application/json", {}), charge_body(0),
                      fail_on_error);
    publisher.wait_all();
    const auto done = [&] {
        const auto stats = worker.stats();
        return static_cast<std::size_t>(stats.processed + stats.duplicates);
    };
    while (!running.failed() && done() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto start = Clock::now();
    RssSampler sampler(0, count, [&] { return done() - 1; });
    // Paced in ticks of 10 ms, each publishing the charges due by its end.
    constexpr auto kTick = std::chrono::milliseconds(10);
    std::size_t published = 0;
    for (std::size_t tick = 0; published < count && !running.failed(); ++tick) {
        std::this_thread::sleep_until(start + tick * kTick);
        const auto due =
            std::min(count, static_cast<std::size_t>(rate * std::chrono::duration<double>((tick + 1) * kTick).count()));
        for (; published < due; ++published) {
            publisher.publish("", queue,
                              OwnedProperties::make(fmt::format("s-{}", published), "", "application/json", {}),
                              charge_body(published), fail_on_error);
        }
    }
    publisher.wait_all();
    while (!running.failed() && done() < count + 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double seconds = seconds_since(start);
    sampler.stop();
    running.stop();
    pqxx::connection connection(db.url());
    const auto booked = scalar(connection, "SELECT count(*) FROM payments.ledger");
    if (booked != static_cast<long long>(count) + 1) {
        throw std::runtime_error(fmt::format("soak: {} charges booked of {}", booked, count + 1));
    }
    auto out = sampler.figures();
    out["seconds"] = seconds;
    out["offered_msgs_per_s"] = rate;
    out["booked"] = booked;
    return out;
}

nlohmann::json dlq_replay_soak(std::size_t count, const std::string& worker_binary) {
    namespace header = idemq::detail::header;
    const std::string dlq = unique("bench.replay") + ".dlq";
    const std::string sink = unique("bench.replay.sink");
    {
        // Dead letters as a worker writes them (their reason, error and origin).
        idemq::detail::BlockingPublisher publisher(broker_settings("idemq-bench dlq filler"));
        publisher.connection().declare_queue(dlq);
        publisher.connection().declare_queue(sink);
        const idemq::detail::HeaderList headers{
            {std::string(header::kReason), std::string("max-attempts")},
            {std::string(header::kError), std::string("payments: account A7 is closed")},
            {std::string(header::kErrorType), std::string("std::runtime_error")},
            {std::string(header::kHandler), std::string("payments.charge")},
            {std::string(header::kAttempts), std::int64_t{5}},
            {std::string(header::kOriginalExchange), std::string("payments")},
            {std::string(header::kOriginalRoutingKey), std::string("charge")}};
        const auto start = Clock::now();
        for (std::size_t i = 0; i < count; ++i) {
            publisher.publish("", dlq, OwnedProperties::make(fmt::format("d-{}", i), "", "application/json", headers),
                              charge_body(i), [](std::optional<std::string> error) {
                                  if (error) throw std::runtime_error("publish failed: " + *error);
                              });
        }
        publisher.wait_all();
        fmt::print("  {} dead letters published in {:.0f} s\n", count, seconds_since(start));
    }
    // The sink drained as the copies arrive: the replay's progress.
    std::atomic<std::size_t> arrived{0};
    std::atomic<bool> stop{false};
    std::exception_ptr consumer_error;
    std::thread consumer([&] {
        try {
            auto connection = connect("idemq-bench replay sink");
            connection.set_prefetch(1000);
            connection.consume(sink, "sink");
            while (!stop) {
                auto event = connection.wait_event(std::chrono::milliseconds(100));
                if (!event) continue;
                if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) {
                    connection.ack(delivery->delivery_tag);
                    ++arrived;
                }
            }
        } catch (...) {
            consumer_error = std::current_exception();
        }
    });
    std::vector<std::string> args{worker_binary, "dlq", "replay", "--queue", dlq, "--all", "--to-queue", sink};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const auto start = Clock::now();
    pid_t pid = 0;
    if (posix_spawn(&pid, worker_binary.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
        stop = true;
        consumer.join();
        throw std::runtime_error("cannot start " + worker_binary);
    }
    RssSampler sampler(pid, count, [&] { return arrived.load(); });
    int status = 0;
    waitpid(pid, &status, 0);
    const double replay_seconds = seconds_since(start);
    sampler.stop();
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (arrived < count && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
    consumer.join();
    if (consumer_error) std::rethrow_exception(consumer_error);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        throw std::runtime_error(fmt::format("dlq replay exited with status {}", status));
    }
    if (arrived != count) throw std::runtime_error(fmt::format("dlq replay: {} of {} arrived", arrived.load(), count));
    auto out = sampler.figures();
    out["seconds"] = replay_seconds;
    return out;
}

nlohmann::json large_inbox(std::size_t rows, std::size_t count, int concurrency) {
    // Keys spread over the whole index, as UUIDs or hashes would be: each
    // new claim lands on a page of its own, not at the index's right edge.
    const auto spread = [](std::vector<Message> messages, const std::string& salt) {
        for (auto& m : messages) m.id = idemq::detail::sha256_hex(salt + m.id).substr(0, 32);
        return messages;
    };
    const auto per_message = spread(make_messages(count, 0), "p");
    const auto batched = spread(make_messages(count, 0), "b");
    const auto measure = [&](const Database& db) {
        const double single = static_cast<double>(count) / idemq_run(concurrency, per_message, 0, {}, &db).seconds;
        const double batch =
            static_cast<double>(count) / idemq_run(concurrency, batched, 0, {.batch = 100}, &db).seconds;
        fmt::print("  per-message {:.0f} msg/s, batch of 100 {:.0f} msg/s\n", single, batch);
        return std::pair{single, batch};
    };
    nlohmann::json out = nlohmann::json::object();
    fmt::print("  empty inbox:\n");
    Database empty;
    const auto [empty_single, empty_batch] = measure(empty);

    Database large;
    pqxx::connection connection(large.url());
    const auto filling = Clock::now();
    constexpr std::size_t kChunk = 2'000'000;
    for (std::size_t from = 0; from < rows; from += kChunk) {
        pqxx::work tx(connection);
        tx.exec(fmt::format(
            "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id) "
            "SELECT 'payments.charge', convert_to(md5('old' || g), 'UTF8'), decode(md5(g::text) || md5(g::text), "
            "'hex'), convert_to('old-' || g, 'UTF8'), ''::bytea FROM generate_series({}, {}) g",
            from + 1, std::min(rows, from + kChunk)));
        tx.commit();
        fmt::print("  {} of {} inbox rows ({:.0f} s)\n", std::min(rows, from + kChunk), rows, seconds_since(filling));
        std::fflush(stdout);
    }
    // As autovacuum would leave it: visibility map set, statistics current.
    pqxx::nontransaction(connection).exec("VACUUM ANALYZE idemq.inbox");
    const double fill_seconds = seconds_since(filling);
    pqxx::nontransaction tx(connection);
    const auto sizes = tx.exec(
        "SELECT pg_relation_size('idemq.inbox'), pg_relation_size('idemq.inbox_pkey'), "
        "pg_relation_size('idemq.inbox_received_at'), current_setting('shared_buffers')")[0];
    out["inbox_rows"] = rows;
    out["fill_seconds"] = fill_seconds;
    out["table_bytes"] = sizes[0].as<long long>();
    out["primary_key_bytes"] = sizes[1].as<long long>();
    out["received_at_index_bytes"] = sizes[2].as<long long>();
    out["shared_buffers"] = sizes[3].as<std::string>();
    fmt::print("  {} rows in {:.0f} s: table {} MiB, primary key {} MiB, received_at index {} MiB, shared_buffers {}\n",
               rows, fill_seconds, sizes[0].as<long long>() >> 20, sizes[1].as<long long>() >> 20,
               sizes[2].as<long long>() >> 20, sizes[3].as<std::string>());
    fmt::print("  large inbox:\n");
    const auto [large_single, large_batch] = measure(large);
    out["empty_per_message_msgs_per_s"] = empty_single;
    out["empty_batch100_msgs_per_s"] = empty_batch;
    out["large_per_message_msgs_per_s"] = large_single;
    out["large_batch100_msgs_per_s"] = large_batch;
    out["per_message_large_over_empty"] = large_single / empty_single;
    out["batch100_large_over_empty"] = large_batch / empty_batch;
    return out;
}

}  // namespace bench
