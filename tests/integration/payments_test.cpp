// End-to-end tests of the payments example against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <csignal>
#include <map>
#include <random>
#include <set>

#include "charge_handler.hpp"
#include "payments_schema.hpp"
#include "payments_worker.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

constexpr const char* kQueue = "payments.charge";
constexpr const char* kDeadLetters = "payments.charge.dlq";

void wait_for_queue(test::Broker& broker) {
    REQUIRE_MESSAGE(test::eventually([&] { return broker.consumed(kQueue); }), "the worker never declared its queue");
}

}  // namespace

TEST_CASE("the same message id delivered three times books one charge and counts two duplicates") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", test::payments_schema());
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [](idemq::Worker& w) {
        w.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
    });
    test::Broker broker(vhost.url());
    wait_for_queue(broker);

    const test::Outgoing message{.body = test::charge("A1", 1250), .message_id = "m-1"};
    broker.publish("payments", "charge", {message, message, message});

    REQUIRE(test::eventually([&] {
        const auto stats = worker.stats();
        return stats.processed + stats.duplicates == 3;
    }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 1);
    CHECK(stats.duplicates == 2);
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 1);
    CHECK(db.count("SELECT balance_cents FROM payments.balances WHERE account = 'A1'") == 1250);
    CHECK(broker.ready(kQueue) == 0);
}

namespace {

// How the workers commit: alone (empty), in batches or in groups.
using Mode = std::map<std::string, std::string>;
const Mode kPerMessage{};
const Mode kBatches{{"PAYMENTS_BATCH_SIZE", "50"}};
const Mode kGroups{{"PAYMENTS_GROUP_COMMIT", "50"}, {"IDEMQ_PREFETCH", "200"}};

Mode with(Mode mode, const std::string& name, const std::string& value) {
    mode[name] = value;
    return mode;
}

// With companions, m-crash is published among them, so that it commits in
// a group (or a batch) with some of them.
void killed_after_commit(const Mode& mode, int companions = 0) {
    test::PaymentsWorker payments({.env = with(mode, "IDEMQ_TEST_CRASH_AFTER_COMMIT", "m-crash")});
    test::Broker& broker = payments.broker();
    payments.wait_consuming();
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < companions; ++i) {
        messages.push_back({.body = test::charge("A8", 10), .message_id = "m-" + std::to_string(i)});
    }
    messages.insert(messages.begin() + companions / 2, {.body = test::charge("A7", 500), .message_id = "m-crash"});
    payments.publish(messages);
    CHECK(payments.process().wait() == 128 + SIGKILL);
    CHECK(payments.db().count("SELECT count(*) FROM payments.ledger WHERE message_id = 'm-crash'") == 1);
    // The unacked delivery went back to the queue with the dead connection.
    CHECK(test::eventually([&] { return broker.ready(kQueue) >= 1; }));

    payments.env().erase("IDEMQ_TEST_CRASH_AFTER_COMMIT");
    payments.start();
    payments.wait_consuming();
    REQUIRE_MESSAGE(test::eventually([&] {
                        return payments.metric("idemq_duplicates_total") >= 1 &&
                               payments.db().count("SELECT count(*) FROM payments.ledger") == companions + 1 &&
                               broker.ready(kQueue) == 0;
                    }),
                    payments.output());
    payments.stop();
    if (companions == 0) {
        CHECK(payments.final_metric("idemq_duplicates_total") == 1);
        CHECK(payments.final_metric("idemq_messages_processed_total") == 0);
    }
    CHECK(payments.db().count("SELECT count(*) FROM payments.ledger") == companions + 1);
    CHECK(payments.db().count("SELECT count(DISTINCT message_id) FROM payments.ledger") == companions + 1);
    CHECK(payments.db().count("SELECT balance_cents FROM payments.balances WHERE account = 'A7'") == 500);
    if (companions > 0) {
        CHECK(payments.db().count("SELECT balance_cents FROM payments.balances WHERE account = 'A8'") ==
              10LL * companions);
    }
    CHECK(broker.ready(kQueue) == 0);
}

void two_workers_exactly_once(const Mode& mode) {
    test::PaymentsWorker payments({.env = mode});
    const test::Database& db = payments.db();
    test::Broker& broker = payments.broker();

    constexpr int kUnique = 1400;
    std::mt19937 random(20261124);
    std::vector<test::Outgoing> messages;
    std::map<std::string, long long> expected;
    for (int i = 0; i < kUnique; ++i) {
        const std::string account = "A" + std::to_string(i % 20);
        const long long cents = 1 + (i % 97);
        messages.push_back({.body = test::charge(account, cents), .message_id = "u-" + std::to_string(i)});
        expected[account] += cents;
        // 3 of every 7 uniques are followed by a duplicate of a recent message.
        if (i % 7 < 3) {
            const int back = std::uniform_int_distribution<int>(0, std::min(i, 50))(random);
            messages.push_back(messages[messages.size() - 1 - static_cast<std::size_t>(back)]);
        }
    }
    REQUIRE(messages.size() == 2000);

    test::WorkerProcess& first = payments.process();
    const auto second = payments.start_another();
    payments.wait_consuming();
    payments.publish(messages);

    // Done when every unique charge is booked and counted, and every duplicate acked.
    const auto both = [&](const std::string& metric) { return first.metric(metric) + second->metric(metric); };
    REQUIRE_MESSAGE(
        test::eventually(
            [&] {
                return db.count("SELECT count(*) FROM payments.ledger") >= kUnique &&
                       both("idemq_messages_processed_total") >= kUnique && both("idemq_duplicates_total") >= 600;
            },
            std::chrono::seconds(120)),
        "ledger at " << db.count("SELECT count(*) FROM payments.ledger") << ", processed at "
                     << both("idemq_messages_processed_total") << ", duplicates at " << both("idemq_duplicates_total"));
    first.stop();
    second->stop();

    CHECK(broker.ready(kQueue) == 0);
    CHECK(broker.ready(kDeadLetters) == 0);
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == kUnique);
    CHECK(db.count("SELECT count(DISTINCT message_id) FROM payments.ledger") == kUnique);
    for (const auto& [account, cents] : expected) {
        CHECK_MESSAGE(
            db.count("SELECT balance_cents FROM payments.balances WHERE account = '" + account + "'") == cents,
            account);
    }
    const auto final_both = [&](const std::string& metric) {
        return first.final_metric(metric) + second->final_metric(metric);
    };
    CHECK(final_both("idemq_messages_processed_total") == kUnique);
    CHECK(final_both("idemq_duplicates_total") == 600);
    INFO("first worker processed " << first.final_metric("idemq_messages_processed_total") << ", second "
                                   << second->final_metric("idemq_messages_processed_total"));
    // A committed batch or group is one observation of the batch size histogram.
    if (!mode.empty()) CHECK(final_both("idemq_batch_size_count") > 0);
}

}  // namespace

TEST_CASE("a worker killed after COMMIT and before the ack applies the effect once: the redelivery is a duplicate") {
    killed_after_commit(kPerMessage);
}

TEST_CASE("batch mode: a worker killed after a batch COMMIT and before the acks applies the effect once") {
    killed_after_commit(kBatches);
}

TEST_CASE("group commit: a worker killed after a group COMMIT and before the acks applies the effect once") {
    killed_after_commit(kGroups, 9);
}

TEST_CASE("two workers share 2,000 messages with 30% duplicates: every balance is the sum of its unique charges" *
          test::concurrency) {
    two_workers_exactly_once(kPerMessage);
}

TEST_CASE("batch mode: two workers share 2,000 messages with 30% duplicates, each charge booked once") {
    two_workers_exactly_once(kBatches);
}

TEST_CASE("group commit: two workers share 2,000 messages with 30% duplicates, each charge booked once" *
          test::concurrency) {
    two_workers_exactly_once(kGroups);
}

TEST_CASE("bad input goes to the dead-letter queue with its reason, and the worker keeps running") {
    test::PaymentsWorker payments({.env = {{"IDEMQ_MAX_BODY_BYTES", "1000"}}});
    const test::Database& db = payments.db();
    test::Broker& broker = payments.broker();
    payments.wait_consuming();

    payments.publish({{.body = test::charge("A1", 100), .message_id = "", .correlation_id = "corr-no-id"},
                      {.body = "{not json", .message_id = "bad-json"},
                      {.body = test::charge("A1", -5), .message_id = "negative"},
                      {.body = test::charge("A1", 100), .message_id = "k-1"}});
    REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM payments.ledger") == 1; }));
    payments.publish({{.body = test::charge("A1", 999), .message_id = "k-1", .headers = {{"tenant", "acme"}}},
                      {.body = std::string(2000, ' ') + test::charge("A1", 1), .message_id = "too-big"}});

    REQUIRE(test::eventually([&] { return broker.ready(kDeadLetters) == 5; }));
    CHECK(payments.process().running());
    const auto dead = broker.peek_all(kDeadLetters);
    REQUIRE(dead.size() == 5);
    std::map<std::string, const idemq::detail::Delivery*> by_id;
    for (const auto& d : dead) by_id[d.properties.message_id()] = &d;
    REQUIRE(by_id.size() == 5);
    CHECK(test::header(*by_id.at(""), "x-idemq-reason") == "missing-idempotency-key");
    CHECK(by_id.at("")->properties.correlation_id() == "corr-no-id");
    CHECK(test::header(*by_id.at("bad-json"), "x-idemq-reason") == "permanent-error");
    CHECK(test::header(*by_id.at("bad-json"), "x-idemq-error") == "body is not a JSON object");
    CHECK(test::header(*by_id.at("bad-json"), "x-idemq-error-type") == "idemq::PermanentError");
    CHECK(by_id.at("bad-json")->body == "{not json");
    CHECK(test::header(*by_id.at("negative"), "x-idemq-reason") == "permanent-error");
    CHECK(test::header(*by_id.at("k-1"), "x-idemq-reason") == "idempotency-key-conflict");
    CHECK(by_id.at("k-1")->body == test::charge("A1", 999));
    CHECK(test::header(*by_id.at("k-1"), "tenant") == "acme");
    CHECK(test::header(*by_id.at("too-big"), "x-idemq-reason") == "message-too-large");
    for (const auto& d : dead) {
        CHECK(test::header(d, "x-idemq-handler") == "payments.charge");
        CHECK(test::header(d, "x-idemq-original-exchange") == "payments");
        CHECK(test::header(d, "x-idemq-original-routing-key") == "charge");
        CHECK_FALSE(test::header(d, "x-idemq-failed-at").empty());
        CHECK_FALSE(test::header(d, "x-idemq-failed-by").empty());
        CHECK_FALSE(test::header(d, "x-idemq-error").empty());
    }
    // The first k-1 stands; nothing else was booked.
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 1);
    CHECK(db.count("SELECT balance_cents FROM payments.balances WHERE account = 'A1'") == 100);
    // A dead letter is in the DLQ a moment before the worker has the broker's
    // confirm and counts it.
    REQUIRE(test::eventually([&] { return payments.metric("idemq_dead_lettered_total") >= 5; }));
    payments.stop();
    CHECK(broker.ready(kQueue) == 0);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 5);
    // The summary line a worker prints at a graceful stop (docs/operations.md)
    // says the same: the one test of that line.
    CHECK(test::summary_value(payments.output(), "dead_lettered") == 5);
}

TEST_CASE("migrate run twice, and by two processes at once, applies each migration once") {
    test::Database db;
    const std::map<std::string, std::string> env{{"IDEMQ_DATABASE_URL", db.url()}};
    test::Process one(test::bin("payments-worker"), {"migrate"}, env);
    test::Process two(test::bin("payments-worker"), {"migrate"}, env);
    CHECK(one.wait() == 0);
    CHECK(two.wait() == 0);
    test::Process again(test::bin("payments-worker"), {"migrate"}, env);
    CHECK(again.wait() == 0);
    CHECK(again.output().find("0 applied, 6 already up to date") != std::string::npos);
    CHECK(db.count("SELECT count(*) FROM idemq.schema_migrations") == 6);
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox") == 0);
}

TEST_CASE("a wrong setting stops the worker at start with a message naming it, and no password") {
    test::Process no_url(test::bin("payments-worker"), {"run"},
                         {{"IDEMQ_AMQP_URL", ""}, {"IDEMQ_DATABASE_URL", "postgresql://x/y"}});
    CHECK(no_url.wait() == 2);
    CHECK(no_url.output().find("IDEMQ_AMQP_URL") != std::string::npos);

    test::Process bad_number(test::bin("payments-worker"), {"run"},
                             {{"IDEMQ_AMQP_URL", "amqp://a/"}, {"IDEMQ_CONCURRENCY", "lots"}});
    CHECK(bad_number.wait() == 2);
    CHECK(bad_number.output().find("IDEMQ_CONCURRENCY") != std::string::npos);

    test::Process unreachable(test::bin("payments-worker"), {"run"},
                              {{"IDEMQ_AMQP_URL", test::base_amqp_url()},
                               {"IDEMQ_DATABASE_URL", "postgresql://idemq:planted-secret@127.0.0.1:1/idemq"}});
    CHECK(unreachable.wait() == 1);
    CHECK(unreachable.output().find("cannot connect to Postgres") != std::string::npos);
    CHECK(unreachable.output().find("planted-secret") == std::string::npos);
}
