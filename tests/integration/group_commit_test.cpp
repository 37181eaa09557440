// Group commit (Route::group_commit) against the real services: the
// per-message guarantees inside a shared transaction.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <span>
#include <thread>

#include "running_worker.hpp"
#include "support.hpp"

namespace {

using std::chrono::milliseconds;

// Books each message's id into group_test.booked. Ids tell it how to
// misbehave: "bad-" throws every time, "perm-" throws PermanentError,
// "swallow-" books, then catches a failed statement's error and returns.
class MisbehavingHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context&) override {
        const std::string id(message.message_id());
        {
            std::lock_guard lock(mutex_);
            ++calls_[id];
        }
        tx.exec_params("INSERT INTO group_test.booked (id) VALUES ($1)", id);
        if (id.starts_with("bad-")) throw std::runtime_error("the downstream service is down");
        if (id.starts_with("perm-")) throw idemq::PermanentError("this charge can never be booked");
        if (id.starts_with("swallow-")) {
            try {
                tx.exec_params("SELECT 1 / 0");
            } catch (const std::exception&) {
                // The worst handler: the error is gone, the transaction is not.
            }
        }
    }
    int calls(const std::string& id) {
        std::lock_guard lock(mutex_);
        return calls_[id];
    }

private:
    std::mutex mutex_;
    std::map<std::string, int> calls_;
};

std::uint64_t dead(const idemq::WorkerStats& stats) {
    std::uint64_t total = 0;
    for (const auto& [why, n] : stats.dead_lettered) total += n;
    return total;
}

}  // namespace

TEST_CASE("group commit: a message failing inside a group leaves the others committed and takes its own path" *
          test::concurrency) {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    (void)db.scalar("CREATE SCHEMA group_test; CREATE TABLE group_test.booked (id text PRIMARY KEY)");
    auto* handler = new MisbehavingHandler();
    test::RunningWorker worker(
        {.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 100}, [&](idemq::Worker& w) {
            w.add_handler(
                {.handler = "grouped",
                 .retry = {.immediate_retries = 1, .immediate_backoff = milliseconds(10), .delayed_retries = 0},
                 .group_commit = {.max_messages = 20, .linger = milliseconds(100)}},
                std::unique_ptr<idemq::Handler>(handler));
        });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("grouped"); }));
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 26; ++i) messages.push_back({.body = "{}", .message_id = "good-" + std::to_string(i)});
    // In the middle of the groups, where a failure would take others down.
    messages.insert(messages.begin() + 3, {.body = "{}", .message_id = "bad-1"});
    messages.insert(messages.begin() + 9, {.body = "{}", .message_id = "perm-1"});
    messages.insert(messages.begin() + 14, {.body = "{}", .message_id = "swallow-1"});
    messages.insert(messages.begin() + 20, {.body = "{}", .message_id = "bad-2"});
    broker.publish("", "grouped", messages);

    REQUIRE(test::eventually([&] {
        const auto stats = worker.stats();
        return stats.processed == 26 && dead(stats) == 4;
    }));
    const auto stats = worker.stop();
    // The good ones committed in groups, each once; nothing of the failed ones did.
    CHECK(stats.batches >= 1);
    CHECK(db.count("SELECT count(*) FROM group_test.booked") == 26);
    CHECK(db.count("SELECT count(*) FROM group_test.booked WHERE id LIKE 'good-%'") == 26);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE handler = 'grouped'") == 26);
    // Their own paths: the group's attempt is the first, charged; a permanent
    // error is dead-lettered at once; a swallowed error is a failure.
    CHECK(stats.dead_lettered.at("retries-exhausted") == 3);
    CHECK(stats.dead_lettered.at("permanent-error") == 1);
    CHECK(stats.immediate_retries == 3);
    CHECK(handler->calls("bad-1") == 2);
    CHECK(handler->calls("bad-2") == 2);
    CHECK(handler->calls("swallow-1") == 2);
    CHECK(handler->calls("perm-1") == 1);
    CHECK(broker.ready("grouped") == 0);
    CHECK(broker.ready("grouped.dlq") == 4);
}

namespace {

// Moves one unit from one account to another, the accounts named by the
// body ("a>b"), pausing between the two updates: two groups that take the
// same accounts in opposite orders deadlock.
class Transfer final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context&) override {
        const std::string body(message.body());
        const auto split = body.find('>');
        tx.exec_params("UPDATE group_test.accounts SET units = units - 1 WHERE id = $1", body.substr(0, split));
        std::this_thread::sleep_for(milliseconds(20));
        tx.exec_params("UPDATE group_test.accounts SET units = units + 1 WHERE id = $1", body.substr(split + 1));
    }
};

}  // namespace

TEST_CASE("group commit: groups that take the handler's rows in opposite orders lose nothing and dead-letter nothing") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    (void)db.scalar(
        "CREATE SCHEMA group_test; CREATE TABLE group_test.accounts (id text PRIMARY KEY, units int NOT NULL);"
        "INSERT INTO group_test.accounts VALUES ('a', 1000), ('b', 1000)");
    // Few attempts: a member bounced by a lock wait is not charged. (Two
    // messages running alone afterwards may still deadlock each other, as
    // they would without groups: that one is charged.)
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 100},
                               [&](idemq::Worker& w) {
                                   w.add_handler({.handler = "transfers",
                                                  .retry = {.immediate_retries = 2, .delayed_retries = 0},
                                                  .group_commit = {.max_messages = 5, .linger = milliseconds(50)}},
                                                 std::make_unique<Transfer>());
                               });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("transfers"); }));
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 40; ++i) {
        messages.push_back({.body = i % 2 == 0 ? "a>b" : "b>a", .message_id = "t-" + std::to_string(i)});
    }
    broker.publish("", "transfers", messages);

    REQUIRE(test::eventually([&] { return worker.stats().processed == 40; }, std::chrono::seconds(120)));
    const auto stats = worker.stop();
    CHECK(dead(stats) == 0);
    CHECK(broker.ready("transfers.dlq") == 0);
    CHECK(db.count("SELECT sum(units) FROM group_test.accounts") == 2000);
    CHECK(db.count("SELECT units FROM group_test.accounts WHERE id = 'a'") == 1000);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE handler = 'transfers'") == 40);
}

TEST_CASE("group commit: a group larger than 64, a linger over 1 s, or a group on a batch handler is refused") {
    struct Noop final : idemq::Handler {
        void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {}
    };
    struct NoopBatch final : idemq::BatchHandler {
        void handle_batch(std::span<const idemq::Message>, pqxx::transaction_base&, idemq::BatchContext&) override {}
    };
    idemq::Worker worker({});
    CHECK_THROWS_AS(
        worker.add_handler({.handler = "big", .group_commit = {.max_messages = 65}}, std::make_unique<Noop>()),
        idemq::ConfigError);
    CHECK_THROWS_AS(
        worker.add_handler({.handler = "slow", .group_commit = {.max_messages = 8, .linger = std::chrono::seconds(2)}},
                           std::make_unique<Noop>()),
        idemq::ConfigError);
    CHECK_THROWS_AS(worker.add_batch_handler({.handler = "batch", .group_commit = {.max_messages = 8}},
                                             std::make_unique<NoopBatch>(), {}),
                    idemq::ConfigError);
    CHECK_NOTHROW(
        worker.add_handler({.handler = "fine", .group_commit = {.max_messages = 64}}, std::make_unique<Noop>()));
}
