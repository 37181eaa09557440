// Batch mode: many messages per transaction, every per-message guarantee kept.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include "charge_handler.hpp"
#include "payments_schema.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

// A worker with the batch payments handler over messages already waiting in
// its queue, so they arrive together and form batches.
struct BatchFixture {
    test::Database db;
    test::Vhost vhost;
    std::unique_ptr<test::Broker> broker;
    std::unique_ptr<test::RunningWorker> worker;

    BatchFixture() {
        idemq::apply_migrations(db.url(), "idemq", test::payments_schema());
        broker = std::make_unique<test::Broker>(vhost.url());
        broker->declare_queue("payments.charge");
    }
    void start() {
        worker = std::make_unique<test::RunningWorker>(
            idemq::WorkerOptions{.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 200},
            [](idemq::Worker& w) {
                w.add_batch_handler(payments::charge_route(), std::make_unique<payments::ChargeBatchHandler>(),
                                    {.max_messages = 50, .linger = std::chrono::milliseconds(50)});
            });
    }
    long long ledger() { return db.count("SELECT count(*) FROM payments.ledger"); }
};

}  // namespace

TEST_CASE_FIXTURE(BatchFixture,
                  "a batch with one permanently failing message commits the others and dead-letters only that one" *
                      test::concurrency) {
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 40; ++i)
        messages.push_back(
            {.body = test::charge("A" + std::to_string(i % 4), 10), .message_id = "b-" + std::to_string(i)});
    messages[17] = {.body = test::charge("A1", -1), .message_id = "bad"};
    broker->publish("", "payments.charge", messages);
    start();
    REQUIRE(test::eventually([&] { return ledger() == 39 && broker->ready("payments.charge.dlq") == 1; }));
    const auto stats = worker->stop();
    CHECK(stats.processed == 39);
    CHECK(stats.batches >= 2);  // the halves without the bad message still commit as batches
    CHECK(stats.dead_lettered.at("permanent-error") == 1);
    const auto dead = broker->peek_all("payments.charge.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].properties.message_id() == "bad");
    CHECK(db.count("SELECT sum(balance_cents) FROM payments.balances") == 390);
    CHECK(broker->ready("payments.charge") == 0);
}

TEST_CASE_FIXTURE(BatchFixture,
                  "duplicates inside one batch are absorbed, and a key reused inside a batch is a conflict") {
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 10; ++i)
        messages.push_back({.body = test::charge("A", 1 + i), .message_id = "u-" + std::to_string(i)});
    messages.push_back(messages[1]);
    messages.push_back(messages[1]);
    messages.push_back(messages[2]);
    messages.push_back({.body = test::charge("A", 999), .message_id = "u-3"});
    broker->publish("", "payments.charge", messages);
    start();
    REQUIRE(test::eventually([&] {
        const auto s = worker->stats();
        return s.processed + s.duplicates == 13 && broker->ready("payments.charge.dlq") == 1;
    }));
    const auto stats = worker->stop();
    CHECK(stats.processed == 10);
    CHECK(stats.duplicates == 3);
    CHECK(stats.batches >= 1);
    CHECK(stats.dead_lettered.at("idempotency-key-conflict") == 1);
    CHECK(ledger() == 10);
    // Whichever u-3 committed first stands; the other is the conflict.
    const long long balance = db.count("SELECT balance_cents FROM payments.balances WHERE account = 'A'");
    CHECK((balance == 55 || balance == 55 - 4 + 999));
    const auto dead = broker->peek_all("payments.charge.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].properties.message_id() == "u-3");
    CHECK(dead[0].body == (balance == 55 ? test::charge("A", 999) : test::charge("A", 4)));
}
