// The helpers every idemq-bench scenario shares: private databases, queues
// filled with confirms, idemq workers run on a thread of their own.
#include "support.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include <algorithm>
#include <optional>
#include <random>
#include <thread>

#include "charge_handler.hpp"

namespace bench {

std::string base_amqp, base_db;

std::string unique(const std::string& prefix) {
    static std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{}_{:08x}", prefix, random() & 0xFFFFFFFFULL);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

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

Database::Database() : name_(unique("bench")) {
    pqxx::connection admin(base_db);
    pqxx::nontransaction(admin).exec("CREATE DATABASE " + name_);
    url_ = base_db.substr(0, base_db.rfind('/') + 1) + name_;
    auto migrations = idemq::framework_migrations();
    for (auto& m : payments::migrations()) migrations.push_back(std::move(m));
    idemq::apply_migrations(url_, "idemq", migrations);
}

Database::~Database() {
    try {
        pqxx::connection admin(base_db);
        pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {}
}

// Built member by member: GCC 12 at -O3 takes the designated-initializer
// temporary's nested strings for uninitialized (-Wmaybe-uninitialized).
AmqpConnection::Settings broker_settings(const std::string& connection_name) {
    AmqpConnection::Settings settings;
    settings.url = base_amqp;
    settings.connection_name = connection_name;
    settings.heartbeat = std::chrono::seconds(0);
    return settings;
}

AmqpConnection connect(const std::string& name) { return AmqpConnection(broker_settings(name)); }

double publish_all(const std::string& queue, const std::vector<Message>& messages, bool stamp) {
    idemq::detail::BlockingPublisher publisher(broker_settings("idemq-bench publisher"));
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

idemq::WorkerOptions worker_options(const Database& db, int concurrency, std::size_t batch_size) {
    return {.amqp_url = base_amqp,
            .database_url = db.url(),
            .concurrency = concurrency,
            // Batches can fill only if the broker hands out enough.
            .prefetch = static_cast<int>(std::min<std::size_t>(
                65535, std::max<std::size_t>(
                           32, static_cast<std::size_t>(concurrency) * std::max<std::size_t>(8, batch_size)))),
            .metrics_address = "",
            .handle_signals = false};
}

std::vector<double> commit_latencies(const Database& db, const std::unordered_map<std::string, std::int64_t>& sent) {
    pqxx::connection connection(db.url());
    pqxx::nontransaction tx(connection);
    std::vector<double> out;
    if (tx.exec("SHOW track_commit_timestamp")[0][0].as<std::string>() != "on") {
        fmt::print(stderr,
                   "idemq-bench: track_commit_timestamp is off (restart scripts/services): no latency figures\n");
        return out;
    }
    for (const auto& row :
         tx.exec("SELECT message_id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint "
                 "FROM payments.ledger")) {
        const auto it = sent.find(row[0].as<std::string>());
        if (it == sent.end() || row[1].is_null()) continue;
        out.push_back(static_cast<double>(row[1].as<std::int64_t>() - it->second) / 1e3);
    }
    return out;
}

IdemqResult idemq_run(int concurrency, const std::vector<Message>& messages, double rate, Sharing sharing,
                      const Database* database) {
    std::optional<Database> own;
    const Database& db = database != nullptr ? *database : own.emplace();
    const std::string queue = unique("bench.idemq");
    if (rate <= 0) publish_all(queue, messages);
    idemq::Worker worker(worker_options(db, concurrency, std::max(sharing.batch, sharing.group)));
    if (sharing.batch > 1) {
        worker.add_batch_handler({.handler = "payments.charge", .queue = queue},
                                 std::make_unique<payments::ChargeBatchHandler>(payments::Events::kNone),
                                 {.max_messages = sharing.batch});
    } else {
        // Like for like with the hand-written consumers, which send nothing on.
        worker.add_handler({.handler = "payments.charge",
                            .queue = queue,
                            .group_commit = {.max_messages = std::max<std::size_t>(1, sharing.group)}},
                           std::make_unique<payments::ChargeHandler>(payments::Events::kNone));
    }
    std::unordered_map<std::string, std::int64_t> sent;  // first publish, µs since the epoch
    const auto start = Clock::now();
    RunningWorker running(worker);
    if (rate > 0) {
        // Paced publishing from here, in slices, each stamped with its send time.
        idemq::detail::BlockingPublisher publisher(broker_settings("idemq-bench paced publisher"));
        publisher.connection().declare_queue(queue);
        // One message first, waited for: the figures start once the worker
        // consumes, not while it connects.
        publisher.publish("", queue, OwnedProperties::make("warm-up", "", "application/json", {}),
                          R"({"account": "warm-up", "amount_cents": 1})", [](std::optional<std::string>) {});
        publisher.wait_all();
        while (!running.failed() && worker.stats().processed == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        const auto begin = Clock::now();
        for (std::size_t i = 0; i < messages.size(); ++i) {
            std::this_thread::sleep_until(
                begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate)));
            sent.emplace(messages[i].id, std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
            publisher.publish("", queue, OwnedProperties::make(messages[i].id, "", "application/json", {}),
                              messages[i].body, [](std::optional<std::string>) {});
        }
        publisher.wait_all();
    }
    while (!running.failed()) {
        const auto stats = worker.stats();
        if (stats.processed + stats.duplicates >= messages.size() + (rate > 0 ? 1 : 0)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const double elapsed = seconds_since(start);
    running.stop();
    return {elapsed, rate > 0 ? commit_latencies(db, sent) : std::vector<double>{}};
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
long long scalar(pqxx::connection& connection, const std::string& sql) {
    pqxx::nontransaction tx(connection);
    return tx.exec(sql)[0][0].as<long long>();
}

double wait_for_count(pqxx::connection& connection, const std::string& sql, long long target, Clock::time_point start,
                      const std::function<bool()>& failed) {
    const auto deadline = Clock::now() + std::chrono::minutes(5);
    for (;;) {
        if (scalar(connection, sql) >= target) return seconds_since(start);
        if ((failed && failed()) || Clock::now() > deadline) {
            throw std::runtime_error(fmt::format("stalled at {} of {}: {}", scalar(connection, sql), target, sql));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}
}  // namespace bench
