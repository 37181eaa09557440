// Outages that do not take the shared services down: Postgres backends of the
// test's own database terminated, broker connections of the test's own vhost
// closed, a worker stopped under load. They run in parallel with the others.
#include <doctest/doctest.h>

#include <map>

#include "payments_worker.hpp"

namespace {

using std::chrono::milliseconds;

const test::Labels kImmediate{{"kind", "immediate"}};
const test::Labels kDelayed{{"kind", "delayed"}};
const test::Labels kBroker{{"component", "broker"}};

}  // namespace

TEST_CASE(
    "Postgres backends terminated while 2,000 messages flow: all processed once, none dead-lettered, no attempt "
    "charged" *
    test::concurrency) {
    test::PaymentsWorker payments;
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    // The queue and its binding exist before the worker starts, so the
    // messages wait there and flow the moment it consumes.
    payments.wait_consuming();
    payments.stop();
    payments.publish(messages);
    payments.start();
    for (const long long at : {200, 900}) {
        REQUIRE(test::eventually([&] { return payments.ledger_rows() >= at; }, std::chrono::seconds(60)));
        payments.db().terminate_backends();
    }
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
    CHECK(payments.final_metric("idemq_retries_scheduled_total", kImmediate) == 0);
    CHECK(payments.final_metric("idemq_retries_scheduled_total", kDelayed) == 0);
    // Only the log says a handler's connection broke mid-delivery: no counter
    // counts a loss that reconnects at the first try.
    CHECK(payments.output().find("Postgres connection lost") != std::string::npos);
}

TEST_CASE("broker connections closed while messages flow: the worker reconnects and processes everything once" *
          test::concurrency) {
    test::PaymentsWorker payments;
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    payments.wait_consuming();
    payments.publish(messages);
    REQUIRE(test::eventually([&] { return payments.ledger_rows() >= 300; }, std::chrono::seconds(60)));
    payments.vhost().close_connections();
    REQUIRE_MESSAGE(test::eventually([&] { return payments.metric("idemq_reconnects_total", kBroker) >= 1; },
                                     std::chrono::seconds(60)),
                    payments.output());
    // A fresh test connection: ours was closed with the others.
    payments.reconnect_broker();
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
    CHECK(payments.final_metric("idemq_reconnects_total", kBroker) >= 1);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
}

TEST_CASE("SIGTERM under load exits 0 within the grace period, and a restart processes everything once" *
          test::concurrency) {
    test::PaymentsWorker payments({.env = {{"IDEMQ_SHUTDOWN_GRACE_MS", "5000"}}});
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    payments.wait_consuming();
    payments.publish(messages);
    REQUIRE(test::eventually([&] { return payments.ledger_rows() >= 400; }, std::chrono::seconds(60)));
    const auto signalled = std::chrono::steady_clock::now();
    payments.stop();
    const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - signalled);
    INFO("stopped in " << took.count() << " ms");
    CHECK(took < milliseconds(5'000 + 1'000));
    CHECK(payments.ledger_rows() < 2000);
    payments.start();
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
}
