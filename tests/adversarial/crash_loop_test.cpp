// The crash-loop guard counts deaths of the process while it handled a
// message, wherever the death happens, and nothing else.
#include <doctest/doctest.h>

#include <csignal>

#include "payments_worker.hpp"

namespace {

// Runs payments-worker under a supervisor, with IDEMQ_CRASH_LOOP_LIMIT=2 and
// `faults` set, over ten good charges and `poison`, until the poison is
// dead-lettered as a crash loop and the good ones are booked. Returns how
// many times the worker died.
int deaths_until_dead_lettered(const std::map<std::string, std::string>& faults, const std::string& poison_account) {
    auto env = faults;
    env["IDEMQ_CRASH_LOOP_LIMIT"] = "2";
    // One handler thread: no other message is mid-handling when it dies.
    env["IDEMQ_CONCURRENCY"] = "1";
    test::PaymentsWorker payments({.env = env, .start = false});
    const test::Database& db = payments.db();
    test::Broker& broker = payments.broker();
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 10; ++i)
        messages.push_back({.body = test::charge("A1", 10), .message_id = "ok-" + std::to_string(i)});
    messages.insert(messages.begin() + 3,
                    test::Outgoing{.body = test::charge(poison_account, 10), .message_id = "poison"});
    const int deaths = payments.supervise(messages, [&] {
        return broker.ready("payments.charge.dlq") == 1 && db.count("SELECT count(*) FROM payments.ledger") == 10;
    });
    const auto dead = broker.peek_all("payments.charge.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].properties.message_id() == "poison");
    CHECK(test::header(dead[0], "x-idemq-reason") == "crash-loop");
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 10);
    CHECK(db.count("SELECT count(*) FROM idemq.handling_started") == 0);
    CHECK(broker.ready("payments.charge") == 0);
    return deaths;
}

}  // namespace

TEST_CASE("a message that fails on attempt 1 and kills the process on attempt 2 is counted and dead-lettered") {
    // flaky* accounts fail attempts 1 and 2; attempt 2 aborts before it can.
    const int deaths = deaths_until_dead_lettered(
        {{"IDEMQ_TEST_ABORT_IN_HANDLER", "poison"}, {"IDEMQ_TEST_ABORT_ON_ATTEMPT", "2"}}, "flaky-1");
    // Every death happened on a marked attempt: exactly the limit.
    CHECK(deaths == 2);
}

TEST_CASE("a message whose key function kills the process is counted too") {
    const int deaths = deaths_until_dead_lettered({{"IDEMQ_TEST_ABORT_IN_KEY", "poison"}}, "A1");
    // The first delivery is not marked; the two after it are.
    CHECK(deaths == 3);
}

TEST_CASE("deliveries released by a graceful stop are no crash loop, even with IDEMQ_CRASH_LOOP_LIMIT=1") {
    test::PaymentsWorker payments({.env = {{"IDEMQ_CRASH_LOOP_LIMIT", "1"}}});
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    payments.wait_consuming();
    payments.publish(messages);
    REQUIRE(test::eventually([&] { return payments.ledger_rows() >= 300; }));
    payments.stop();
    // Deliveries are released after SIGTERM, once /metrics has had its last
    // scrape: only the summary line printed at the stop counts them.
    const long long released = test::summary_value(payments.output(), "released");
    INFO("released at the stop: " << released);
    CHECK(released > 0);
    payments.start();
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
}
