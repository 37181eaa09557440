// idemq-bench: idemq measured against the raw limits of this machine, side by
// side in one run, because absolute numbers drift from run to run here.
//   1. raw broker: publish with confirms, then a bare rabbitmq-c consume+ack
//   2. raw database: the inbox claim plus the example's writes, one
//      transaction per message, no broker
//   3. bare pipeline: rabbitmq-c consume, the same transaction on N threads,
//      ack after commit: the simplest correct loop without the framework
//   4. idemq end to end with the payments handler, per concurrency and
//      duplicate ratio; then latency (publish to the handler's end) at half of
//      each setting's throughput
//   5. idemq in batch mode (the payments batch handler) per batch size
// Needs IDEMQ_AMQP_URL and IDEMQ_DATABASE_URL (scripts/bench sets them).
#include <idemq/idemq.hpp>

#include <fmt/format.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"
#include "charge_handler.hpp"
#include "common/fingerprint.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using idemq::detail::AmqpConnection;
using idemq::detail::OwnedProperties;

std::string base_amqp, base_db;

std::string unique(const std::string& prefix) {
    static std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{}_{:08x}", prefix, random() & 0xFFFFFFFFULL);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct Message {
    std::string id;
    std::string body;
};

// `count` messages, `duplicate_percent` of them copies of an earlier one.
std::vector<Message> make_messages(std::size_t count, int duplicate_percent) {
    std::mt19937 random(7);
    std::vector<Message> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        if (!out.empty() && static_cast<int>(random() % 100) < duplicate_percent) {
            out.push_back(out[random() % out.size()]);
            continue;
        }
        out.push_back(
            {fmt::format("m-{}", i), fmt::format(R"({{"account": "A{}", "amount_cents": {}}})", i % 50, 1 + i % 97)});
    }
    return out;
}

// A database of its own, with the inbox and the payments tables.
class Database {
public:
    Database() : name_(unique("bench")) {
        pqxx::connection admin(base_db);
        pqxx::nontransaction(admin).exec("CREATE DATABASE " + name_);
        url_ = base_db.substr(0, base_db.rfind('/') + 1) + name_;
        auto migrations = idemq::framework_migrations();
        for (auto& m : payments::migrations()) migrations.push_back(std::move(m));
        idemq::apply_migrations(url_, "idemq", migrations);
    }
    ~Database() {
        try {
            pqxx::connection admin(base_db);
            pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (const std::exception&) {}
    }
    [[nodiscard]] const std::string& url() const { return url_; }

private:
    std::string name_;
    std::string url_;
};

AmqpConnection connect(const std::string& name) {
    return AmqpConnection({.url = base_amqp, .connection_name = name, .heartbeat = std::chrono::seconds(0)});
}

double publish_all(const std::string& queue, const std::vector<Message>& messages, bool stamp = false) {
    idemq::detail::BlockingPublisher publisher(
        {.url = base_amqp, .connection_name = "idemq-bench publisher", .heartbeat = std::chrono::seconds(0)});
    publisher.connection().declare_queue(queue);
    const auto start = Clock::now();
    for (const auto& m : messages) {
        idemq::detail::HeaderList headers;
        if (stamp)
            headers.emplace_back("x-bench-sent-ns", static_cast<std::int64_t>(Clock::now().time_since_epoch().count()));
        publisher.publish("", queue, OwnedProperties::make(m.id, "", "application/json", headers), m.body,
                          [](std::optional<std::string> error) {
                              if (error) throw std::runtime_error("publish failed: " + *error);
                          });
    }
    publisher.wait_all();
    return seconds_since(start);
}

double raw_consume(const std::string& queue, std::size_t count) {
    auto connection = connect("idemq-bench raw consumer");
    connection.set_prefetch(100);
    const auto start = Clock::now();
    connection.consume(queue, "raw");
    std::size_t seen = 0;
    while (seen < count) {
        auto event = connection.wait_event(std::chrono::seconds(10));
        if (!event) throw std::runtime_error("raw consumer stalled");
        if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) {
            connection.ack(delivery->delivery_tag);
            ++seen;
        }
    }
    return seconds_since(start);
}

// The transaction every pipeline runs for one message: claim, then the
// payments writes when the key is new. Returns false for a duplicate.
void prepare(pqxx::connection& connection) {
    connection.prepare("claim",
                       "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id) "
                       "VALUES ('bench', $1, decode($2, 'hex'), $1, '') ON CONFLICT DO NOTHING RETURNING 1");
}

bool book(pqxx::connection& connection, const std::string& id, const std::string& body) {
    const payments::Charge charge = payments::parse_charge(body);
    pqxx::work tx(connection);
    if (tx.exec_prepared("claim", id, idemq::detail::sha256_hex(body)).empty()) {
        tx.commit();
        return false;
    }
    tx.exec_params("INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ($1, $2, $3)", id,
                   charge.account, charge.amount_cents);
    tx.exec_params(
        "INSERT INTO payments.balances (account, balance_cents) VALUES ($1, $2) ON CONFLICT (account) "
        "DO UPDATE SET balance_cents = payments.balances.balance_cents + EXCLUDED.balance_cents",
        charge.account, charge.amount_cents);
    tx.commit();
    return true;
}

double raw_database(int threads, const std::vector<Message>& messages) {
    Database db;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    const auto start = Clock::now();
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            pqxx::connection connection(db.url());
            prepare(connection);
            for (std::size_t i; (i = next++) < messages.size();) book(connection, messages[i].id, messages[i].body);
        });
    }
    for (auto& w : workers) w.join();
    return seconds_since(start);
}

// Consume on one thread, run the transaction on `threads`, ack on the
// consuming thread after commit.
double bare_pipeline(int threads, const std::vector<Message>& messages) {
    Database db;
    const std::string queue = unique("bench.bare");
    publish_all(queue, messages);
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<idemq::detail::Delivery> work;
    std::vector<std::uint64_t> done;
    bool stop = false;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            pqxx::connection connection(db.url());
            prepare(connection);
            for (;;) {
                idemq::detail::Delivery delivery;
                {
                    std::unique_lock lock(mutex);
                    ready.wait(lock, [&] { return stop || !work.empty(); });
                    if (stop) return;
                    delivery = std::move(work.front());
                    work.pop_front();
                }
                book(connection, delivery.properties.message_id(), delivery.body);
                std::lock_guard lock(mutex);
                done.push_back(delivery.delivery_tag);
            }
        });
    }
    auto connection = connect("idemq-bench bare pipeline");
    connection.set_prefetch(static_cast<std::uint16_t>(std::max(32, threads * 8)));
    const auto start = Clock::now();
    connection.consume(queue, "bare");
    std::size_t acked = 0;
    while (acked < messages.size()) {
        if (auto event = connection.wait_event(std::chrono::milliseconds(1))) {
            if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) {
                std::lock_guard lock(mutex);
                work.push_back(std::move(*delivery));
                ready.notify_one();
            }
        }
        std::vector<std::uint64_t> to_ack;
        {
            std::lock_guard lock(mutex);
            to_ack.swap(done);
        }
        for (const auto tag : to_ack) connection.ack(tag);
        acked += to_ack.size();
    }
    const double elapsed = seconds_since(start);
    {
        std::lock_guard lock(mutex);
        stop = true;
    }
    ready.notify_all();
    for (auto& w : workers) w.join();
    return elapsed;
}

// The payments handler, timing publish -> commit of each message it books.
class TimedCharge final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        inner_.handle(message, tx, ctx);
        if (const auto sent = message.header("x-bench-sent-ns")) {
            const auto ns = Clock::now().time_since_epoch().count() - std::stoll(std::string(*sent));
            std::lock_guard lock(mutex_);
            latencies_.push_back(static_cast<double>(ns) / 1e6);
        }
    }
    std::vector<double> latencies() {
        std::lock_guard lock(mutex_);
        return latencies_;
    }

private:
    // Like for like with the hand-written consumers, which send nothing on.
    payments::ChargeHandler inner_{payments::Events::kNone};
    std::mutex mutex_;
    std::vector<double> latencies_;
};

struct IdemqResult {
    double seconds = 0;
    std::vector<double> latencies_ms;
};

// Runs a worker over `messages`: pre-loaded into the queue (throughput), or
// published at `rate` per second while it runs (latency).
IdemqResult idemq_run(int concurrency, const std::vector<Message>& messages, double rate = 0,
                      std::size_t batch_size = 0) {
    Database db;
    const std::string queue = unique("bench.idemq");
    if (rate <= 0) publish_all(queue, messages);
    idemq::Worker worker({.amqp_url = base_amqp,
                          .database_url = db.url(),
                          .concurrency = concurrency,
                          // Batches can fill only if the broker hands out enough.
                          .prefetch = static_cast<int>(std::min<std::size_t>(
                              65535, std::max<std::size_t>(32, static_cast<std::size_t>(concurrency) *
                                                                   std::max<std::size_t>(8, batch_size)))),
                          .metrics_address = "",
                          .handle_signals = false});
    TimedCharge* timed = nullptr;  // owned by the worker
    if (batch_size > 1) {
        worker.add_batch_handler({.handler = "payments.charge", .queue = queue},
                                 std::make_unique<payments::ChargeBatchHandler>(payments::Events::kNone),
                                 {.max_messages = batch_size});
    } else {
        auto handler = std::make_unique<TimedCharge>();
        timed = handler.get();
        worker.add_handler({.handler = "payments.charge", .queue = queue}, std::move(handler));
    }
    const auto start = Clock::now();
    std::exception_ptr error;
    std::thread runner([&] {
        try {
            worker.run();
        } catch (...) {
            error = std::current_exception();
        }
    });
    if (rate > 0) {
        // Paced publishing from here, in slices, each stamped with its send time.
        idemq::detail::BlockingPublisher publisher(
            {.url = base_amqp, .connection_name = "idemq-bench paced publisher", .heartbeat = std::chrono::seconds(0)});
        publisher.connection().declare_queue(queue);
        const auto begin = Clock::now();
        for (std::size_t i = 0; i < messages.size(); ++i) {
            std::this_thread::sleep_until(
                begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate)));
            publisher.publish(
                "", queue,
                OwnedProperties::make(
                    messages[i].id, "", "application/json",
                    {{"x-bench-sent-ns", static_cast<std::int64_t>(Clock::now().time_since_epoch().count())}}),
                messages[i].body, [](std::optional<std::string>) {});
        }
        publisher.wait_all();
    }
    while (!error) {
        const auto stats = worker.stats();
        if (stats.processed + stats.duplicates >= messages.size()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const double elapsed = seconds_since(start);
    worker.request_stop();
    runner.join();
    if (error) std::rethrow_exception(error);
    return {elapsed, timed != nullptr ? timed->latencies() : std::vector<double>{}};
}

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

long peak_rss_kb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"idemq benchmark: idemq against the raw limits, side by side", "idemq-bench"};
    std::size_t count = 20'000;
    std::vector<int> concurrency{1, 2, 4, 8};
    std::vector<int> duplicates{0, 30};
    std::string json_path = "bench-results.json";
    std::vector<std::size_t> batch_sizes{10, 100};
    cli.add_option("--messages", count, "messages per scenario")->capture_default_str();
    cli.add_option("--concurrency", concurrency, "handler threads to try")->delimiter(',')->capture_default_str();
    cli.add_option("--duplicates", duplicates, "duplicate percentages to try")->delimiter(',')->capture_default_str();
    cli.add_option("--json", json_path, "where to write the results")->capture_default_str();
    cli.add_option("--batch-sizes", batch_sizes, "batch sizes to try")->delimiter(',')->capture_default_str();
    CLI11_PARSE(cli, argc, argv);
    const char* amqp = std::getenv("IDEMQ_AMQP_URL");
    const char* db = std::getenv("IDEMQ_DATABASE_URL");
    if (amqp == nullptr || db == nullptr) {
        fmt::print(stderr,
                   "idemq-bench: set IDEMQ_AMQP_URL and IDEMQ_DATABASE_URL (eval \"$(scripts/services env)\")\n");
        return 2;
    }
    base_amqp = amqp;
    base_db = db;
    setenv("IDEMQ_LOG_LEVEL", "warn", 0);

    nlohmann::json results = nlohmann::json::array();
    const auto record = [&](const std::string& scenario, int c, int dup, double seconds, std::size_t n,
                            nlohmann::json extra = nlohmann::json::object()) {
        const double rate = static_cast<double>(n) / seconds;
        extra["scenario"] = scenario;
        extra["concurrency"] = c;
        extra["duplicate_percent"] = dup;
        extra["messages"] = n;
        extra["seconds"] = seconds;
        extra["msgs_per_s"] = rate;
        results.push_back(extra);
        fmt::print("{:<28} c={:<2} dup={:>2}%  {:>9.0f} msg/s  ({:.2f} s){}\n", scenario, c, dup, rate, seconds,
                   extra.contains("p50_ms") ? fmt::format("  latency p50 {:.1f} p95 {:.1f} p99 {:.1f} max {:.1f} ms",
                                                          extra["p50_ms"].get<double>(), extra["p95_ms"].get<double>(),
                                                          extra["p99_ms"].get<double>(), extra["max_ms"].get<double>())
                                            : "");
        return rate;
    };

    const auto plain = make_messages(count, 0);
    const std::string raw_queue = unique("bench.raw");
    const double publish_seconds = publish_all(raw_queue, plain);
    const double broker = record("1 raw broker consume+ack", 1, 0, raw_consume(raw_queue, count), count,
                                 {{"publish_msgs_per_s", static_cast<double>(count) / publish_seconds}});
    fmt::print("{:<28}            {:>9.0f} msg/s  (persistent, confirms)\n", "  publish", count / publish_seconds);

    std::map<int, double> database, bare;
    for (const int c : concurrency) database[c] = record("2 raw database tx", c, 0, raw_database(c, plain), count);
    for (const int c : concurrency) bare[c] = record("3 bare pipeline", c, 0, bare_pipeline(c, plain), count);

    double best_idemq = 0;
    for (const int dup : duplicates) {
        const auto messages = make_messages(count, dup);
        for (const int c : concurrency) {
            const auto run = idemq_run(c, messages);
            const double rate = record("4 idemq per-message", c, dup, run.seconds, count,
                                       {{"vs_bare_pipeline", 0}, {"vs_raw_limit", 0}});
            results.back()["vs_bare_pipeline"] = rate / bare[c];
            results.back()["vs_raw_limit"] = rate / std::min(broker, database[c]);
            if (dup == duplicates.front()) best_idemq = std::max(best_idemq, rate);
        }
    }
    std::map<std::size_t, double> batched;
    for (const std::size_t size : batch_sizes) {
        const auto messages = make_messages(count, duplicates.front());
        for (const int c : concurrency) {
            const auto run = idemq_run(c, messages, 0, size);
            const double rate = record(fmt::format("5 idemq batch of {}", size), c, duplicates.front(), run.seconds,
                                       count, {{"batch_size", size}});
            results.back()["vs_best_per_message"] = rate / best_idemq;
            batched[size] = std::max(batched[size], rate);
        }
    }
    // Latency at each concurrency and duplicate ratio, publishing at half of
    // that setting's throughput so queues stay short.
    for (const int dup : duplicates) {
        for (const int c : concurrency) {
            double throughput = 0;
            for (const auto& r : results) {
                if (r["scenario"] == "4 idemq per-message" && r["concurrency"] == c && r["duplicate_percent"] == dup) {
                    throughput = r["msgs_per_s"].get<double>();
                }
            }
            const double offered = std::max(50.0, throughput / 2);
            const std::size_t paced = std::min<std::size_t>(count, static_cast<std::size_t>(offered * 2) + 1);
            const auto latency = idemq_run(c, make_messages(paced, dup), offered);
            const auto& ms = latency.latencies_ms;
            record("4 idemq latency (paced)", c, dup, latency.seconds, paced,
                   {{"p50_ms", percentile(ms, 0.5)},
                    {"p95_ms", percentile(ms, 0.95)},
                    {"p99_ms", percentile(ms, 0.99)},
                    {"max_ms", percentile(ms, 1.0)},
                    {"offered_msgs_per_s", offered}});
        }
    }

    const double best_bare =
        std::max_element(bare.begin(), bare.end(), [](auto& a, auto& b) { return a.second < b.second; })->second;
    fmt::print("\nbest idemq per-message / best bare pipeline: {:.2f}   (peak RSS of this process: {} MB)\n",
               best_idemq / best_bare, peak_rss_kb() / 1024);
    for (const auto& [size, rate] : batched) {
        fmt::print("idemq batch of {} / best idemq per-message: {:.2f}\n", size, rate / best_idemq);
    }
    nlohmann::json out = {{"results", results},
                          {"best_idemq_vs_best_bare_pipeline", best_idemq / best_bare},
                          {"peak_rss_kb", peak_rss_kb()}};
    std::ofstream(json_path) << out.dump(2) << "\n";
    fmt::print("wrote {}\n", json_path);
    return 0;
}
