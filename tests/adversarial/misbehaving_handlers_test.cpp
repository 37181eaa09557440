// Handlers that break the rules: each ends where docs/guarantees.md says, and
// the worker keeps consuming.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/except>

#include <thread>

#include "fixture.hpp"
#include "running_worker.hpp"

namespace {

using std::chrono::milliseconds;

const idemq::RetryPolicy kTwoAttempts{
    .immediate_retries = 1, .immediate_backoff = milliseconds(10), .delayed_retries = 0};
const idemq::RetryPolicy kOneAttempt{.immediate_retries = 0, .delayed_retries = 0};

// A statement that always fails (a duplicate primary key): the way handlers
// "ignore" a unique violation.
void swallow_failing_statement(pqxx::transaction_base& tx) {
    try {
        tx.exec_params("INSERT INTO test.once (id) VALUES ($1)", 1);
    } catch (const pqxx::sql_error&) {
        // Ignored, as the misbehaving handler does: Postgres has aborted the transaction.
    }
}

// An event named after the message, staged in the handler's transaction.
idemq::OutgoingMessage event_of(const idemq::Message& message) {
    return {.exchange = "events", .routing_key = "handled", .body = std::string(message.message_id())};
}

// Records its effect and stages an event, then swallows a failed statement
// for bodies "swallow".
class SwallowsSqlError final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        test::record_effect(tx, message, ctx);
        ctx.outbox().publish(event_of(message));
        if (message.body() == "swallow") swallow_failing_statement(tx);
    }
};

class SwallowsSqlErrorInBatch final : public idemq::BatchHandler {
public:
    void handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                      idemq::BatchContext& ctx) override {
        for (const auto& message : messages) {
            const auto bytes = [](std::string_view v) { return pqxx::binarystring(v.data(), v.size()); };
            tx.exec_params(
                "INSERT INTO test.effects (key, message_id, correlation_id, attempt) VALUES ($1, $1, '', $2)",
                bytes(message.message_id()), message.attempt());
            ctx.outbox(message).publish(event_of(message));
            if (message.body() == "swallow") swallow_failing_statement(tx);
        }
    }
};

// Sits idle inside its transaction for bodies "idle", longer than Postgres allows.
class IdlesInTransaction final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        if (message.body() == "idle") std::this_thread::sleep_for(milliseconds(700));
        test::record_effect(tx, message, ctx);
    }
};

class IdlesInBatch final : public idemq::BatchHandler {
public:
    void handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                      idemq::BatchContext&) override {
        for (const auto& message : messages) {
            if (message.body() == "idle") std::this_thread::sleep_for(milliseconds(700));
            const auto bytes = [](std::string_view v) { return pqxx::binarystring(v.data(), v.size()); };
            tx.exec_params(
                "INSERT INTO test.effects (key, message_id, correlation_id, attempt) VALUES ($1, $1, '', $2)",
                bytes(message.message_id()), message.attempt());
        }
    }
};

// Throws something that is not a std::exception for bodies "int".
class ThrowsNonStandard final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        if (message.body() == "int") throw 42;
        test::record_effect(tx, message, ctx);
    }
};

// Events the handlers staged (these tests run no relay: they stay in the
// outbox), all of them or those of one message.
long long staged_events(const test::Database& db, const std::string& message_id = "") {
    return db.count("SELECT count(*) FROM idemq.outbox" +
                    (message_id.empty() ? std::string() : " WHERE body = '" + message_id + "'::bytea"));
}

std::vector<test::Outgoing> normal_messages(const std::string& prefix, int count) {
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < count; ++i) messages.push_back({.body = "ok", .message_id = prefix + std::to_string(i)});
    return messages;
}

}  // namespace

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a handler that swallows an SQL error is never acked as processed: it is retried, then dead-lettered") {
    auto no_relay = options();
    no_relay.outbox_relay = false;
    test::RunningWorker worker(no_relay, [](idemq::Worker& w) {
        w.add_handler({.handler = "swallow", .retry = kTwoAttempts}, std::make_unique<SwallowsSqlError>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("swallow"); }));
    broker.publish_one("", "swallow", {.body = "swallow", .message_id = "s-1"});
    broker.publish("", "swallow", normal_messages("ok-", 5));
    REQUIRE(test::eventually([&] { return broker.ready("swallow.dlq") == 1 && worker.stats().processed == 5; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(stats.immediate_retries == 1);
    // Nothing of s-1 committed: neither its effect nor its inbox row.
    CHECK(db.count("SELECT count(*) FROM test.effects WHERE message_id = 's-1'") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key = 's-1'") == 0);
    CHECK(effects() == 5);
    // Nor its event: what it staged rolled back with it.
    CHECK(staged_events(db) == 5);
    CHECK(staged_events(db, "s-1") == 0);
    const auto dead = broker.peek_all("swallow.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(test::header(dead[0], "x-idemq-error-type") == "idemq::detail::TransactionAborted");
    CHECK(test::header(dead[0], "x-idemq-error").find("nothing was committed") != std::string::npos);
}

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a batch handler that swallows an SQL error commits nothing of it: the others commit, that one is dead-lettered") {
    test::Broker broker(vhost.url());
    broker.declare_queue("swallow");
    auto messages = normal_messages("b-", 20);
    messages[7] = {.body = "swallow", .message_id = "s-1"};
    broker.publish("", "swallow", messages);
    test::RunningWorker worker(
        {.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 100, .outbox_relay = false},
        [](idemq::Worker& w) {
            w.add_batch_handler({.handler = "swallow", .retry = kOneAttempt},
                                std::make_unique<SwallowsSqlErrorInBatch>(),
                                {.max_messages = 20, .linger = milliseconds(50)});
        });
    REQUIRE(test::eventually([&] { return broker.ready("swallow.dlq") == 1 && worker.stats().processed == 19; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(effects() == 19);
    CHECK(db.count("SELECT count(*) FROM test.effects WHERE message_id = 's-1'") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox") == 19);
    CHECK(staged_events(db) == 19);
    CHECK(staged_events(db, "s-1") == 0);
}

TEST_CASE_FIXTURE(test::AdversarialFixture,
                  "a handler that idles in its transaction until Postgres ends the session is charged and "
                  "dead-lettered, not re-run forever" *
                      test::concurrency) {
    auto options = this->options();
    options.idle_in_transaction_timeout = milliseconds(300);
    test::RunningWorker worker(options, [](idemq::Worker& w) {
        w.add_handler({.handler = "idle", .retry = kOneAttempt}, std::make_unique<IdlesInTransaction>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("idle"); }));
    broker.publish_one("", "idle", {.body = "idle", .message_id = "i-1"});
    broker.publish("", "idle", normal_messages("ok-", 5));
    REQUIRE(test::eventually([&] { return broker.ready("idle.dlq") == 1 && worker.stats().processed == 5; },
                             std::chrono::seconds(60)));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(stats.database_pauses == 0);  // not taken for an outage
    CHECK(db.count("SELECT count(*) FROM test.effects WHERE message_id = 'i-1'") == 0);
    const auto dead = broker.peek_all("idle.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(test::header(dead[0], "x-idemq-error").find("Postgres stayed reachable") != std::string::npos);
}

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a batch holding a message that idles in its transaction is split: the others commit, that one is dead-lettered") {
    test::Broker broker(vhost.url());
    broker.declare_queue("idle");
    auto messages = normal_messages("b-", 8);
    messages[3] = {.body = "idle", .message_id = "i-1"};
    broker.publish("", "idle", messages);
    auto options = this->options();
    options.idle_in_transaction_timeout = milliseconds(300);
    options.prefetch = 100;
    test::RunningWorker worker(options, [](idemq::Worker& w) {
        w.add_batch_handler({.handler = "idle", .retry = kOneAttempt}, std::make_unique<IdlesInBatch>(),
                            {.max_messages = 8, .linger = milliseconds(50)});
    });
    REQUIRE(test::eventually([&] { return broker.ready("idle.dlq") == 1 && worker.stats().processed == 7; },
                             std::chrono::seconds(120)));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(effects() == 7);
}

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a handler that throws a non-standard exception is retried, then dead-lettered, and the worker goes on") {
    test::RunningWorker worker(options(), [](idemq::Worker& w) {
        w.add_handler({.handler = "odd", .retry = kTwoAttempts}, std::make_unique<ThrowsNonStandard>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("odd"); }));
    broker.publish_one("", "odd", {.body = "int", .message_id = "n-1"});
    broker.publish("", "odd", normal_messages("ok-", 5));
    REQUIRE(test::eventually([&] { return broker.ready("odd.dlq") == 1 && worker.stats().processed == 5; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(stats.immediate_retries == 1);
    const auto dead = broker.peek_all("odd.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(test::header(dead[0], "x-idemq-error-type") == "unknown");
}
