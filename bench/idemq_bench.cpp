// idemq-bench: idemq measured against the raw limits of this machine, side by
// side in one run, because absolute numbers drift from run to run here.
//   1. raw broker: publish with confirms, then a bare rabbitmq-c consume+ack
//   2. raw database: the inbox claim plus the example's writes, one
//      transaction per message, no broker
//   3. bare pipeline: rabbitmq-c consume, the same transaction on N threads,
//      ack after commit: the simplest correct loop without the framework
//   4. idemq end to end with the payments handler, per concurrency and
//      duplicate ratio; then latency (publish to COMMIT, from Postgres's
//      commit timestamps) at half of each setting's throughput
//   5. idemq in batch mode (the payments batch handler) per batch size, and
//      its latency the same way
//   8. idemq group commit (the plain payments handler, Route::group_commit)
//      per group size, and its latency the same way
//   6. the outbox relay: the raw confirmed-publish ceiling beside the relay's
//      throughput, commit -> delivered latency at paced rates, the whole
//      payments chain (charge -> event -> notification), and optionally the
//      outbox's size under sustained load
//   7. the loop thread's CPU per delivery: idemq with a handler that does
//      nothing but the inbox claim, read from the loop thread's CPU clock
//   9. soak: 1,000,000 charges through one worker at a steady rate, its RSS
//      sampled through the run
//  10. replay: `dlq replay` of 1,000,000 dead letters, its RSS the same way
//  11. inbox: per-message and batch throughput over an inbox of 20,000,000
//      rows against an empty one
// --scenarios picks some of them by name (raw, database, bare, idemq, batch,
// relay, loop, group, soak, replay, inbox); "all" is 1-8: the scenarios at
// scale take minutes each and run only when named. Figures that compare with
// a scenario left out are not printed.
// Needs IDEMQ_AMQP_URL and IDEMQ_DATABASE_URL (scripts/bench sets them).
#include <idemq/idemq.hpp>

#include <fmt/format.h>
#include <pthread.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "charge_handler.hpp"
#include "common/fingerprint.hpp"
#include "outbox/doorbell.hpp"
#include "outbox/relay.hpp"
#include "scale.hpp"
#include "support.hpp"

using namespace bench;

namespace {

// The transaction every pipeline runs for one message: claim, then the
// payments writes when the key is new. Returns false for a duplicate.
// All three statements prepared, as a careful hand-written loop would.
void prepare(pqxx::connection& connection) {
    connection.prepare("claim",
                       "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id) "
                       "VALUES ('bench', $1, decode($2, 'hex'), $1, '') ON CONFLICT DO NOTHING RETURNING 1");
    connection.prepare("ledger", "INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ($1, $2, $3)");
    connection.prepare("balance",
                       "INSERT INTO payments.balances (account, balance_cents) VALUES ($1, $2) ON CONFLICT (account) "
                       "DO UPDATE SET balance_cents = payments.balances.balance_cents + EXCLUDED.balance_cents");
}

bool book(pqxx::connection& connection, const std::string& id, const std::string& body) {
    const payments::Charge charge = payments::parse_charge(body);
    pqxx::work tx(connection);
    if (tx.exec_prepared("claim", id, idemq::detail::sha256_hex(body)).empty()) {
        tx.commit();
        return false;
    }
    tx.exec_prepared("ledger", id, charge.account, charge.amount_cents);
    tx.exec_prepared("balance", charge.account, charge.amount_cents);
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

// Scenario 2 with the messages in groups of `group`, as group commit runs
// them but without the framework: one transaction per group, each message in
// a savepoint of its own, the group's members in account order (so that two
// groups never wait on each other's balance rows in opposite orders). The
// ceiling of savepoint-based group commit for this work on this machine.
double raw_database_groups(int threads, const std::vector<Message>& messages, std::size_t group) {
    Database db;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    const auto start = Clock::now();
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            pqxx::connection connection(db.url());
            prepare(connection);
            for (std::size_t from; (from = next.fetch_add(group)) < messages.size();) {
                std::vector<std::pair<payments::Charge, const Message*>> members;
                for (std::size_t i = from; i < std::min(messages.size(), from + group); ++i) {
                    members.emplace_back(payments::parse_charge(messages[i].body), &messages[i]);
                }
                std::sort(members.begin(), members.end(),
                          [](const auto& a, const auto& b) { return a.first.account < b.first.account; });
                pqxx::work tx(connection);
                for (const auto& [charge, message] : members) {
                    tx.exec("SAVEPOINT member");
                    if (!tx.exec_prepared("claim", message->id, idemq::detail::sha256_hex(message->body)).empty()) {
                        tx.exec_prepared("ledger", message->id, charge.account, charge.amount_cents);
                        tx.exec_prepared("balance", charge.account, charge.amount_cents);
                    }
                    tx.exec("RELEASE SAVEPOINT member");
                }
                tx.commit();
            }
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

// A handler that does nothing: what is left is the framework's own work.
class NoopHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {}
};

struct LoopCpu {
    double seconds = 0;
    double loop_cpu_seconds = 0;
    std::size_t deliveries = 0;  // those the CPU figure covers
    idemq::WorkerStats stats;
};

// Scenario 7: the loop thread's CPU per delivery, pre-loaded queue. The
// first 10% are a warm-up (connecting, declaring, the first prefetch), so
// the figure is the steady state's.
LoopCpu loop_cpu(int concurrency, const std::vector<Message>& messages) {
    Database db;
    const std::string queue = unique("bench.loop");
    publish_all(queue, messages);
    idemq::Worker worker(worker_options(db, concurrency));
    worker.add_handler({.handler = "noop", .queue = queue}, std::make_unique<NoopHandler>());
    const std::size_t warm_up = messages.size() / 10;
    const auto done = [&] {
        const auto stats = worker.stats();
        return stats.processed + stats.duplicates;
    };
    RunningWorker running(worker);
    while (!running.failed() && done() < warm_up) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::size_t from = done();
    const double cpu_from = running.loop_cpu_seconds();
    const auto start = Clock::now();
    while (!running.failed() && done() < messages.size()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    LoopCpu result{.seconds = seconds_since(start),
                   .loop_cpu_seconds = running.loop_cpu_seconds() - cpu_from,
                   .deliveries = messages.size() - from,
                   .stats = {}};
    running.stop();
    result.stats = worker.stats();
    return result;
}

// Scenario 6: the outbox relay. Each run has a database of its own and a
// topic exchange bound ("#") to a queue of the same name.
std::string bound_exchange(const std::string& prefix) {
    const std::string name = unique(prefix);
    auto connection = connect("idemq-bench setup");
    connection.declare_exchange(name, "topic");
    connection.declare_queue(name);
    connection.bind_queue(name, name, "#");
    return name;
}

idemq::detail::RelaySettings relay_settings(const Database& db) {
    return {.amqp_url = base_amqp, .database_url = db.url()};
}

// What a row of the relay scenarios carries: id "r-<i>", so the receiving
// side knows which commit it belongs to.
idemq::OutgoingMessage relay_message(const std::string& exchange, std::size_t i) {
    return {
        .exchange = exchange,
        .routing_key = "bench.charged",
        .body = fmt::format(R"({{"charge_id": "m-{}", "account": "A{}", "amount_cents": {}}})", i, i % 50, 1 + i % 97),
        .message_id = fmt::format("r-{}", i),
        .content_type = "application/json"};
}

struct RelayThroughput {
    double seconds = 0;
    double staging_seconds = 0;
};

// 6b: N rows staged beforehand in transactions of 1,000, then one relay
// started; the time until every row is in outbox_published. The queue is
// drained afterwards, which also checks that all N arrived.
RelayThroughput relay_throughput(std::size_t count) {
    Database db;
    const std::string exchange = bound_exchange("bench.relay");
    pqxx::connection connection(db.url());
    const auto staging = Clock::now();
    for (std::size_t i = 0; i < count;) {
        pqxx::work tx(connection);
        for (const std::size_t end = std::min(count, i + 1000); i < end; ++i) {
            idemq::outbox::stage(tx, relay_message(exchange, i));
        }
        tx.commit();
    }
    RelayThroughput result{.staging_seconds = seconds_since(staging)};
    const auto start = Clock::now();
    {
        idemq::detail::OutboxRelay relay(relay_settings(db), nullptr);
        result.seconds = wait_for_count(connection, "SELECT count(*) FROM idemq.outbox_published",
                                        static_cast<long long>(count), start);
    }
    raw_consume(exchange, count);
    return result;
}

// 6c: single-row transactions at `rate` per second for `seconds`, from
// `threads` connections (one cannot commit 5,000 times a second); the time
// from each COMMIT's return to its delivery to a consumer of the bound
// queue. Each COMMIT rings the in-process doorbell, as a handler's does:
// what a worker's own relay sees (outbox::wake_relay would add a NOTIFY,
// which is for relays in other processes).
struct RelayLatency {
    std::vector<double> ms;
    double staging_seconds = 0;  // from the first COMMIT's slot to the last COMMIT
};

RelayLatency relay_latency(double rate, double seconds, int threads) {
    Database db;
    const std::string exchange = bound_exchange("bench.relay.latency");
    const auto total = static_cast<std::size_t>(std::max(1.0, rate * seconds));
    std::vector<Clock::time_point> committed(total), received(total);
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> arrived{0};
    std::exception_ptr consumer_error;
    std::thread consumer([&] {
        try {
            auto connection = connect("idemq-bench relay latency consumer");
            connection.set_prefetch(1000);
            connection.consume(exchange, "latency");
            while (arrived < total && !stop) {
                auto event = connection.wait_event(std::chrono::milliseconds(100));
                if (!event) continue;
                if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) {
                    const auto now = Clock::now();
                    const std::string id(delivery->properties.message_id());
                    const auto i = std::stoul(id.substr(2));
                    // A redelivered copy keeps the first arrival.
                    if (received[i] == Clock::time_point{}) {
                        received[i] = now;
                        ++arrived;
                    }
                    connection.ack(delivery->delivery_tag);
                }
            }
        } catch (...) {
            consumer_error = std::current_exception();
        }
    });
    idemq::detail::OutboxRelay relay(relay_settings(db), nullptr);
    const auto begin = Clock::now() + std::chrono::milliseconds(200);  // the relay and the consumer are up
    std::vector<std::thread> stagers;
    for (int t = 0; t < threads; ++t) {
        stagers.emplace_back([&, t] {
            pqxx::connection connection(db.url());
            for (auto i = static_cast<std::size_t>(t); i < total; i += static_cast<std::size_t>(threads)) {
                std::this_thread::sleep_until(
                    begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate)));
                pqxx::work tx(connection);
                idemq::outbox::stage(tx, relay_message(exchange, i));
                tx.commit();
                committed[i] = Clock::now();
                idemq::detail::OutboxDoorbell::instance().ring();
            }
        });
    }
    for (auto& s : stagers) s.join();
    const double staging_seconds = seconds_since(begin);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (arrived < total && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop = true;
    consumer.join();
    if (consumer_error) std::rethrow_exception(consumer_error);
    std::vector<double> ms;
    ms.reserve(total);
    for (std::size_t i = 0; i < total; ++i) {
        if (received[i] == Clock::time_point{}) throw std::runtime_error(fmt::format("row {} never arrived", i));
        ms.push_back(std::chrono::duration<double, std::milli>(received[i] - committed[i]).count());
    }
    return {std::move(ms), staging_seconds};
}

struct ChainResult {
    double seconds = 0;
    double booked_seconds = 0;
};

// 6d: the payments chain in one worker: N charges pre-loaded, ChargeHandler
// staging a "charged" event per charge, the worker's own relay publishing it
// to payments.events, NotifyHandler consuming it into payments.notifications.
ChainResult payments_chain(int concurrency, const std::vector<Message>& messages) {
    Database db;
    const std::string queue = unique("bench.chain");
    publish_all(queue, messages);
    idemq::Worker worker(worker_options(db, concurrency));
    worker.add_handler({.handler = "payments.charge", .queue = queue},
                       std::make_unique<payments::ChargeHandler>(payments::Events::kStaged));
    // One queue for every run, not a unique one: a queue left bound to
    // payments.events would collect the events of every later run.
    auto notify = payments::notify_route();
    notify.queue = "bench.payments.notify";
    worker.add_handler(std::move(notify), std::make_unique<payments::NotifyHandler>());
    pqxx::connection connection(db.url());
    const auto start = Clock::now();
    RunningWorker running(worker);
    const auto n = static_cast<long long>(messages.size());
    ChainResult result;
    result.booked_seconds =
        wait_for_count(connection, "SELECT count(*) FROM payments.ledger", n, start, [&] { return running.failed(); });
    result.seconds = wait_for_count(connection, "SELECT count(*) FROM payments.notifications", n, start,
                                    [&] { return running.failed(); });
    running.stop();
    return result;
}

// 6e: rows staged at `rate` per second (a transaction every 10 ms) for
// `minutes` with a relay running and a consumer draining the queue; every
// `sample_every` the sizes of the two tables and the outbox's live and dead
// tuples. What it shows: whether autovacuum keeps up with the relay's deletes.
nlohmann::json relay_sustain(double minutes, double rate, std::chrono::seconds sample_every) {
    Database db;
    const std::string exchange = bound_exchange("bench.relay.sustain");
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> staged{0};
    std::exception_ptr failure;  // of the consumer or the stager; the first one
    std::mutex failure_mutex;
    const auto guarded = [&](auto body) {
        return [&, body] {
            try {
                body();
            } catch (...) {
                std::lock_guard lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                stop = true;
            }
        };
    };
    std::thread consumer(guarded([&] {
        auto connection = connect("idemq-bench sustain consumer");
        connection.set_prefetch(1000);
        connection.consume(exchange, "sustain");
        while (!stop) {
            auto event = connection.wait_event(std::chrono::milliseconds(100));
            if (!event) continue;
            if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) connection.ack(delivery->delivery_tag);
        }
    }));
    idemq::detail::OutboxRelay relay(relay_settings(db), nullptr);
    std::thread stager(guarded([&] {
        pqxx::connection connection(db.url());
        constexpr auto kTick = std::chrono::milliseconds(10);
        const auto begin = Clock::now();
        for (std::size_t tick = 0; !stop; ++tick) {
            std::this_thread::sleep_until(begin + tick * kTick);
            // Rows due by the end of this tick, so the rate holds for any size.
            const auto due = static_cast<std::size_t>(rate * std::chrono::duration<double>((tick + 1) * kTick).count());
            pqxx::work tx(connection);
            for (std::size_t i = staged; i < due; ++i) idemq::outbox::stage(tx, relay_message(exchange, i));
            tx.commit();
            idemq::detail::OutboxDoorbell::instance().ring();
            staged = std::max<std::size_t>(staged, due);
        }
    }));
    pqxx::connection connection(db.url());
    nlohmann::json samples = nlohmann::json::array();
    nlohmann::json peak = {{"outbox_bytes", 0}, {"outbox_dead_tuples", 0}, {"pending_rows", 0}};
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(minutes * 60));
    fmt::print("{:>8} {:>12} {:>16} {:>9} {:>9} {:>9} {:>11}\n", "t (s)", "outbox KiB", "published MiB", "live", "dead",
               "pending", "autovacuums");
    for (auto at = begin + sample_every; at <= end && !stop; at += sample_every) {
        std::this_thread::sleep_until(at);
        pqxx::nontransaction tx(connection);
        const auto row = tx.exec(
            "SELECT pg_total_relation_size('idemq.outbox'), pg_total_relation_size('idemq.outbox_published'), "
            "n_live_tup, n_dead_tup, autovacuum_count, (SELECT count(*) FROM idemq.outbox) "
            "FROM pg_stat_user_tables WHERE schemaname = 'idemq' AND relname = 'outbox'")[0];
        const nlohmann::json sample = {{"seconds", seconds_since(begin)},
                                       {"outbox_bytes", row[0].as<long long>()},
                                       {"outbox_published_bytes", row[1].as<long long>()},
                                       {"outbox_live_tuples", row[2].as<long long>()},
                                       {"outbox_dead_tuples", row[3].as<long long>()},
                                       {"outbox_autovacuums", row[4].as<long long>()},
                                       {"pending_rows", row[5].as<long long>()},
                                       {"staged_rows", staged.load()}};
        for (const char* key : {"outbox_bytes", "outbox_dead_tuples", "pending_rows"}) {
            peak[key] = std::max(peak[key].get<long long>(), sample[key].get<long long>());
        }
        fmt::print("{:>8.0f} {:>12} {:>16.1f} {:>9} {:>9} {:>9} {:>11}\n", sample["seconds"].get<double>(),
                   sample["outbox_bytes"].get<long long>() / 1024,
                   static_cast<double>(sample["outbox_published_bytes"].get<long long>()) / (1024.0 * 1024.0),
                   sample["outbox_live_tuples"].get<long long>(), sample["outbox_dead_tuples"].get<long long>(),
                   sample["pending_rows"].get<long long>(), sample["outbox_autovacuums"].get<long long>());
        samples.push_back(sample);
    }
    stop = true;
    stager.join();
    consumer.join();
    if (failure) std::rethrow_exception(failure);
    fmt::print("max: outbox {} KiB, {} dead tuples, {} pending rows\n", peak["outbox_bytes"].get<long long>() / 1024,
               peak["outbox_dead_tuples"].get<long long>(), peak["pending_rows"].get<long long>());
    return {{"samples", samples}, {"max", peak}, {"staged_rows", staged.load()}, {"seconds", seconds_since(begin)}};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"idemq benchmark: idemq against the raw limits, side by side", "idemq-bench"};
    std::size_t count = 20'000;
    std::vector<int> concurrency{1, 2, 4, 8};
    std::vector<int> duplicates{0, 30};
    std::string json_path = "bench-results.json";
    std::vector<std::size_t> batch_sizes{10, 100};
    std::vector<std::string> scenarios{"all"};
    std::vector<double> latency_rates{1000, 5000};
    double latency_seconds = 5;
    double sustain_minutes = 0;
    double sustain_rate = 2000;
    int sustain_sample_seconds = 30;
    // 64 is the most Route::group_commit allows (Postgres's subtransaction cache).
    std::vector<std::size_t> group_sizes{10, 64};
    std::size_t soak_messages = 1'000'000;
    double soak_rate = 2000;
    std::size_t replay_messages = 1'000'000;
    std::size_t inbox_rows = 20'000'000;
    const std::set<std::string> known{"all",   "raw",  "database", "bare", "idemq",  "batch",
                                      "relay", "loop", "group",    "soak", "replay", "inbox"};
    cli.add_option("--messages", count, "messages per scenario")->capture_default_str();
    cli.add_option("--concurrency", concurrency, "handler threads to try")->delimiter(',')->capture_default_str();
    cli.add_option("--duplicates", duplicates, "duplicate percentages to try")->delimiter(',')->capture_default_str();
    cli.add_option("--json", json_path, "where to write the results")->capture_default_str();
    cli.add_option("--batch-sizes", batch_sizes, "batch sizes to try")->delimiter(',')->capture_default_str();
    cli.add_option("--group-sizes", group_sizes, "group commit sizes to try")->delimiter(',')->capture_default_str();
    cli.add_option("--scenarios", scenarios,
                   "scenarios to run: all, or some of raw (1), database (2), bare (3), "
                   "idemq (4), batch (5), relay (6), loop (7), group (8); and, only when named, soak (9), "
                   "replay (10), inbox (11)")
        ->delimiter(',')
        ->check(CLI::IsMember(known))
        ->capture_default_str();
    cli.add_option("--relay-latency-rates", latency_rates, "relay latency: staged rows per second to try")
        ->delimiter(',')
        ->capture_default_str();
    cli.add_option("--relay-latency-seconds", latency_seconds, "relay latency: how long each rate is held")
        ->capture_default_str();
    cli.add_option("--sustain-minutes", sustain_minutes, "relay sustained load: minutes (0: not run)")
        ->capture_default_str();
    cli.add_option("--sustain-rate", sustain_rate, "relay sustained load: staged rows per second")
        ->capture_default_str();
    cli.add_option("--sustain-sample-seconds", sustain_sample_seconds, "relay sustained load: seconds between samples")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cli.add_option("--soak-messages", soak_messages, "soak: charges through the worker")->capture_default_str();
    cli.add_option("--soak-rate", soak_rate, "soak: charges published per second")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cli.add_option("--replay-messages", replay_messages, "replay: dead letters to replay")->capture_default_str();
    cli.add_option("--inbox-rows", inbox_rows, "inbox: rows already in the large inbox")->capture_default_str();
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
    const auto named = [&](const std::string& name) {
        return std::find(scenarios.begin(), scenarios.end(), name) != scenarios.end();
    };
    const auto wants = [&](const std::string& name) { return named("all") || named(name); };

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
    const auto latency_figures = [](const std::vector<double>& ms) {
        return nlohmann::json{{"p50_ms", percentile(ms, 0.5)},
                              {"p95_ms", percentile(ms, 0.95)},
                              {"p99_ms", percentile(ms, 0.99)},
                              {"max_ms", percentile(ms, 1.0)}};
    };

    const auto plain = make_messages(count, 0);
    double broker = 0;
    if (wants("raw")) {
        const std::string raw_queue = unique("bench.raw");
        const double publish_seconds = publish_all(raw_queue, plain);
        broker = record("1 raw broker consume+ack", 1, 0, raw_consume(raw_queue, count), count,
                        {{"publish_msgs_per_s", static_cast<double>(count) / publish_seconds}});
        fmt::print("{:<28}            {:>9.0f} msg/s  (persistent, confirms)\n", "  publish", count / publish_seconds);
    }

    std::map<int, double> database, bare;
    std::map<std::size_t, double> raw_grouped;  // best over the concurrencies, per group size
    if (wants("database")) {
        for (const int c : concurrency) database[c] = record("2 raw database tx", c, 0, raw_database(c, plain), count);
        if (wants("group")) {
            for (const std::size_t size : group_sizes) {
                for (const int c : concurrency) {
                    const double rate = record(fmt::format("2g raw database group of {}", size), c, 0,
                                               raw_database_groups(c, plain, size), count, {{"group_size", size}});
                    raw_grouped[size] = std::max(raw_grouped[size], rate);
                }
            }
        }
    }
    if (wants("bare")) {
        for (const int c : concurrency) bare[c] = record("3 bare pipeline", c, 0, bare_pipeline(c, plain), count);
    }

    double best_idemq = 0;
    if (wants("idemq")) {
        for (const int dup : duplicates) {
            const auto messages = make_messages(count, dup);
            for (const int c : concurrency) {
                const auto run = idemq_run(c, messages);
                const double rate = record("4 idemq per-message", c, dup, run.seconds, count);
                if (bare.contains(c)) results.back()["vs_bare_pipeline"] = rate / bare[c];
                if (broker > 0 && database.contains(c)) {
                    results.back()["vs_raw_limit"] = rate / std::min(broker, database[c]);
                }
                if (dup == duplicates.front()) best_idemq = std::max(best_idemq, rate);
            }
        }
    }
    std::map<std::size_t, double> batched;
    if (wants("batch")) {
        for (const std::size_t size : batch_sizes) {
            const auto messages = make_messages(count, duplicates.front());
            for (const int c : concurrency) {
                const auto run = idemq_run(c, messages, 0, {.batch = size});
                const double rate = record(fmt::format("5 idemq batch of {}", size), c, duplicates.front(), run.seconds,
                                           count, {{"batch_size", size}});
                if (best_idemq > 0) results.back()["vs_best_per_message"] = rate / best_idemq;
                batched[size] = std::max(batched[size], rate);
            }
        }
    }
    std::map<std::size_t, double> grouped;
    if (wants("group")) {
        for (const std::size_t size : group_sizes) {
            const auto messages = make_messages(count, duplicates.front());
            for (const int c : concurrency) {
                const auto run = idemq_run(c, messages, 0, {.group = size});
                const double rate = record(fmt::format("8 idemq group commit of {}", size), c, duplicates.front(),
                                           run.seconds, count, {{"group_size", size}});
                if (best_idemq > 0) results.back()["vs_best_per_message"] = rate / best_idemq;
                grouped[size] = std::max(grouped[size], rate);
            }
        }
    }
    // Publish -> COMMIT latency at each concurrency (and, per message, each
    // duplicate ratio), publishing at half of that setting's throughput so
    // queues stay short.
    const auto paced_latency = [&](const std::string& scenario, const std::string& label, int c, int dup,
                                   Sharing sharing) {
        double throughput = 0;
        for (const auto& r : results) {
            if (r["scenario"] == scenario && r["concurrency"] == c && r["duplicate_percent"] == dup) {
                throughput = r["msgs_per_s"].get<double>();
            }
        }
        const double offered = std::max(50.0, throughput / 2);
        const std::size_t paced = std::min<std::size_t>(count, static_cast<std::size_t>(offered * 2) + 1);
        const auto latency = idemq_run(c, make_messages(paced, dup), offered, sharing);
        auto figures = latency_figures(latency.latencies_ms);
        figures["offered_msgs_per_s"] = offered;
        record(label, c, dup, latency.seconds, paced, figures);
    };
    if (wants("idemq")) {
        for (const int dup : duplicates) {
            for (const int c : concurrency) paced_latency("4 idemq per-message", "4 idemq latency (paced)", c, dup, {});
        }
    }
    if (wants("batch")) {
        for (const std::size_t size : batch_sizes) {
            for (const int c : concurrency) {
                paced_latency(fmt::format("5 idemq batch of {}", size), fmt::format("5 batch {} latency (paced)", size),
                              c, duplicates.front(), {.batch = size});
            }
        }
    }
    if (wants("group")) {
        for (const std::size_t size : group_sizes) {
            for (const int c : concurrency) {
                paced_latency(fmt::format("8 idemq group commit of {}", size),
                              fmt::format("8 group {} latency (paced)", size), c, duplicates.front(), {.group = size});
            }
        }
    }

    if (wants("relay")) {
        // The ceiling first, measured the same way as scenario 1's publish.
        const std::string raw_queue = unique("bench.raw");
        const double publish_rate =
            record("6a raw publish (confirms)", 1, 0, publish_all(raw_queue, plain), count, {{"window", 1000}});
        raw_consume(raw_queue, count);
        const auto throughput = relay_throughput(count);
        const double relay_rate =
            record("6b relay throughput", 1, 0, throughput.seconds, count,
                   {{"staging_msgs_per_s", static_cast<double>(count) / throughput.staging_seconds}});
        results.back()["vs_raw_publish"] = relay_rate / publish_rate;
        for (const double rate : latency_rates) {
            // The rate printed is the one achieved: staging can fall short of the offered one.
            const auto latency = relay_latency(rate, latency_seconds, 4);
            auto figures = latency_figures(latency.ms);
            figures["offered_msgs_per_s"] = rate;
            record("6c relay latency (paced)", 4, 0, latency.staging_seconds, latency.ms.size(), figures);
        }
        const int chain_concurrency = *std::max_element(concurrency.begin(), concurrency.end());
        const auto chain = payments_chain(chain_concurrency, plain);
        record("6d chain charge->notified", chain_concurrency, 0, chain.seconds, count,
               {{"booked_seconds", chain.booked_seconds}});
        fmt::print("relay / raw publish: {:.2f}\n", relay_rate / publish_rate);
        if (sustain_minutes > 0) {
            fmt::print("\n6e relay sustained load: {:.0f} rows/s for {} min\n", sustain_rate, sustain_minutes);
            auto sustained = relay_sustain(sustain_minutes, sustain_rate, std::chrono::seconds(sustain_sample_seconds));
            const auto staged = sustained["staged_rows"].get<std::size_t>();
            const double seconds = sustained["seconds"].get<double>();
            sustained.erase("staged_rows");
            sustained.erase("seconds");
            record("6e relay sustained", 1, 0, seconds, staged, sustained);
        }
    }

    if (wants("loop")) {
        const int c = *std::max_element(concurrency.begin(), concurrency.end());
        const auto run = loop_cpu(c, plain);
        const double per_delivery_us = run.loop_cpu_seconds * 1e6 / static_cast<double>(run.deliveries);
        record("7 loop CPU per delivery", c, 0, run.seconds, run.deliveries,
               {{"loop_cpu_seconds", run.loop_cpu_seconds},
                {"loop_cpu_us_per_delivery", per_delivery_us},
                {"acks_sent", run.stats.acks_sent},
                {"deliveries_acked", run.stats.deliveries_acked}});
        fmt::print("{:<28}            {:>9.1f} us of loop CPU per delivery, {} acks for {} deliveries\n", "",
                   per_delivery_us, run.stats.acks_sent, run.stats.deliveries_acked);
    }

    const int most = *std::max_element(concurrency.begin(), concurrency.end());
    nlohmann::json at_scale = nlohmann::json::object();
    if (named("soak")) {
        fmt::print("\n9 soak: {} charges at {:.0f}/s, c={}\n", soak_messages, soak_rate, most);
        auto soaked = soak(soak_messages, soak_rate, most);
        record("9 soak", most, 0, soaked["seconds"].get<double>(), soak_messages, soaked);
        at_scale["soak_rss_growth"] = soaked["rss_growth"];
    }
    if (named("replay")) {
        fmt::print("\n10 dlq replay of {} dead letters\n", replay_messages);
        const std::string worker_binary =
            (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "payments-worker").string();
        auto replayed = dlq_replay_soak(replay_messages, worker_binary);
        record("10 dlq replay", 1, 0, replayed["seconds"].get<double>(), replay_messages, replayed);
        at_scale["replay_rss_growth"] = replayed["rss_growth"];
    }
    if (named("inbox")) {
        fmt::print("\n11 large inbox: {} rows, {} charges per run, c={}\n", inbox_rows, count, most);
        auto inbox = large_inbox(inbox_rows, count, most);
        inbox["scenario"] = "11 large inbox";
        inbox["concurrency"] = most;
        inbox["messages"] = count;
        results.push_back(inbox);
        at_scale["large_inbox_per_message"] = inbox["per_message_large_over_empty"];
        at_scale["large_inbox_batch100"] = inbox["batch100_large_over_empty"];
    }

    nlohmann::json out = {{"results", results}, {"peak_rss_kb", peak_rss_kb()}};
    if (!bare.empty() && best_idemq > 0) {
        const double best_bare =
            std::max_element(bare.begin(), bare.end(), [](auto& a, auto& b) { return a.second < b.second; })->second;
        fmt::print("\nbest idemq per-message / best bare pipeline: {:.2f}\n", best_idemq / best_bare);
        out["best_idemq_vs_best_bare_pipeline"] = best_idemq / best_bare;
    }
    if (best_idemq > 0) {
        for (const auto& [size, rate] : batched) {
            fmt::print("idemq batch of {} / best idemq per-message: {:.2f}\n", size, rate / best_idemq);
        }
        for (const auto& [size, rate] : grouped) {
            fmt::print("idemq group commit of {} / best idemq per-message: {:.2f}\n", size, rate / best_idemq);
        }
    }
    // The goals of issue 14, each the best of one setting over the best of
    // the other, all from this run; absent when a scenario was left out.
    const auto best = [](const std::map<int, double>& rates) {
        double top = 0;
        for (const auto& [c, rate] : rates) top = std::max(top, rate);
        return top;
    };
    nlohmann::json ratios = nlohmann::json::object();
    // The largest group measured (64 by default: Route::group_commit's limit).
    if (best_idemq > 0 && !grouped.empty()) {
        ratios["group_commit_over_per_message"] = grouped.rbegin()->second / best_idemq;
        ratios["group_commit_size"] = grouped.rbegin()->first;
    }
    if (best_idemq > 0 && !database.empty()) ratios["per_message_over_db_ceiling"] = best_idemq / best(database);
    // What savepoint-based group commit can reach at most, without the
    // framework: the raw group ceiling over the raw per-message one, and
    // idemq's group commit over that ceiling.
    if (!raw_grouped.empty() && !database.empty()) {
        ratios["raw_group_over_raw_per_message"] = raw_grouped.rbegin()->second / best(database);
        if (!grouped.empty())
            ratios["group_commit_over_raw_group"] = grouped.rbegin()->second / raw_grouped.rbegin()->second;
    }
    if (broker > 0 && batched.contains(100)) ratios["batch100_over_broker_ceiling"] = batched[100] / broker;
    if (best_idemq > 0 && !bare.empty()) ratios["per_message_over_bare_pipeline"] = best_idemq / best(bare);
    // At scale: the RSS growth (end over start, minus 1) and large-inbox
    // throughput over the empty inbox's.
    for (const auto& [name, value] : at_scale.items()) ratios[name] = value;
    for (const auto& [name, value] : ratios.items()) fmt::print("ratios.{}: {:.2f}\n", name, value.get<double>());
    out["ratios"] = ratios;
    fmt::print("peak RSS of this process: {} MB\n", peak_rss_kb() / 1024);
    std::ofstream(json_path) << out.dump(2) << "\n";
    fmt::print("wrote {}\n", json_path);
    return 0;
}
