// The crash-loop guard counts deaths of the process while it handled a
// message, wherever the death happens, and nothing else.
#include <doctest/doctest.h>

#include <csignal>

#include "support.hpp"

namespace {

std::vector<test::Outgoing> with_poison(test::Outgoing poison) {
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 10; ++i) messages.push_back({.body = test::charge("A1", 10), .message_id = "ok-" + std::to_string(i)});
    messages.insert(messages.begin() + 3, std::move(poison));
    return messages;
}

void check_crash_loop_dead_letter(test::Database& db, test::Broker& broker) {
    const auto dead = broker.peek_all("payments.charge.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].properties.message_id() == "poison");
    CHECK(test::header(dead[0], "x-idemq-reason") == "crash-loop");
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 10);
    CHECK(db.count("SELECT count(*) FROM idemq.handling_started") == 0);
    CHECK(broker.ready("payments.charge") == 0);
}

}  // namespace

TEST_CASE("a message that fails on attempt 1 and kills the process on attempt 2 is counted and dead-lettered") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    auto env = test::worker_env(vhost, db);
    // flaky* accounts fail attempts 1 and 2; attempt 2 aborts before it can.
    env["IDEMQ_TEST_ABORT_IN_HANDLER"] = "poison";
    env["IDEMQ_TEST_ABORT_ON_ATTEMPT"] = "2";
    env["IDEMQ_CRASH_LOOP_LIMIT"] = "2";
    // One handler thread: no other message is mid-handling when it dies.
    env["IDEMQ_CONCURRENCY"] = "1";
    const int deaths = test::supervise_payments_worker(
        env, broker, with_poison({.body = test::charge("flaky-1", 10), .message_id = "poison"}), [&] {
            return broker.ready("payments.charge.dlq") == 1 && db.count("SELECT count(*) FROM payments.ledger") == 10;
        });
    // Every death happened on a marked attempt: exactly the limit.
    CHECK(deaths == 2);
    check_crash_loop_dead_letter(db, broker);
}

TEST_CASE("a message whose key function kills the process is counted too") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    auto env = test::worker_env(vhost, db);
    env["IDEMQ_TEST_ABORT_IN_KEY"] = "poison";
    env["IDEMQ_CRASH_LOOP_LIMIT"] = "2";
    // One handler thread: no other message is mid-handling when it dies.
    env["IDEMQ_CONCURRENCY"] = "1";
    const int deaths = test::supervise_payments_worker(
        env, broker, with_poison({.body = test::charge("A1", 10), .message_id = "poison"}), [&] {
            return broker.ready("payments.charge.dlq") == 1 && db.count("SELECT count(*) FROM payments.ledger") == 10;
        });
    // The first delivery is not marked; the two after it are.
    CHECK(deaths == 3);
    check_crash_loop_dead_letter(db, broker);
}

TEST_CASE("deliveries released by a graceful stop are no crash loop, even with IDEMQ_CRASH_LOOP_LIMIT=1") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    auto env = test::worker_env(vhost, db);
    env["IDEMQ_CRASH_LOOP_LIMIT"] = "1";
    long long released = 0;
    {
        test::Process worker(test::bin("payments-worker"), {"run"}, env);
        REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
        broker.publish("payments", "charge", messages);
        REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM payments.ledger") >= 300; }));
        test::stop_gracefully(worker);
        released = test::summary_value(worker.output(), "released");
    }
    INFO("released at the stop: " << released);
    CHECK(released > 0);
    test::Process restarted(test::bin("payments-worker"), {"run"}, env);
    REQUIRE(test::eventually([&] {
        return db.count("SELECT count(*) FROM payments.ledger") == 2000 && broker.ready("payments.charge") == 0;
    }, std::chrono::seconds(120)));
    test::stop_gracefully(restarted);
    test::check_exactly_once(db, broker, 2000, expected);
    CHECK(test::summary_value(restarted.output(), "dead_lettered") == 0);
}
