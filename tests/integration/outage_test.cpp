// Outages of the shared services themselves: Postgres restarted, the RabbitMQ
// node restarted. ctest runs these alone (RUN_SERIAL): every other test would
// see the outage too.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>

#include "payments_worker.hpp"

namespace {

void services(const std::string& args) {
    const char* script = std::getenv("IDEMQ_SERVICES");
    const std::string command =
        (script != nullptr ? std::string(script) : std::string(IDEMQ_SOURCE_DIR) + "/scripts/services") + " " + args +
        " >/dev/null 2>&1";
    REQUIRE_MESSAGE(std::system(command.c_str()) == 0, "failed: " << command);
}

}  // namespace

TEST_CASE("Postgres restarted while 2,000 messages flow: all processed once, none dead-lettered, no attempt charged") {
    test::PaymentsWorker payments;
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    payments.wait_consuming();
    payments.publish(messages);
    REQUIRE(test::eventually([&] { return payments.ledger_rows() >= 300; }));
    services("pg_ctl restart -m fast");
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
    CHECK(payments.final_metric("idemq_retries_scheduled_total", {{"kind", "immediate"}}) == 0);
    CHECK(payments.final_metric("idemq_retries_scheduled_total", {{"kind", "delayed"}}) == 0);
    // Only the log says a handler's connection broke mid-delivery: no counter
    // counts that loss.
    CHECK(payments.output().find("Postgres connection lost") != std::string::npos);
    // Consumption paused: a session found Postgres unreachable, which pauses
    // the consumer, and counts a database reconnect once it is back.
    CHECK(payments.final_metric("idemq_reconnects_total", {{"component", "database"}}) >= 1);
    CHECK(payments.final_metric("idemq_consumer_paused") == 0);
}

TEST_CASE(
    "the broker node restarted while messages flow: the worker reconnects by itself and processes everything once") {
    test::PaymentsWorker payments;
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    payments.wait_consuming();
    payments.publish(messages);
    REQUIRE(test::eventually([&] { return payments.db().count("SELECT count(*) FROM payments.ledger") >= 300; }));
    services("rabbitmq restart");
    REQUIRE_MESSAGE(test::eventually(
                        [&] {
                            return payments.metric("idemq_reconnects_total", {{"component", "broker"}}) >= 1;
                        },
                        std::chrono::seconds(90)),
                    payments.output());
    payments.reconnect_broker();
    payments.wait_booked(2000);
    payments.stop();
    payments.check_exactly_once(2000, expected);
    CHECK(payments.final_metric("idemq_reconnects_total", {{"component", "broker"}}) >= 1);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
}

TEST_CASE("/readyz turns not-ready while Postgres is stopped, and ready again after") {
    test::PaymentsWorker payments;
    payments.wait_consuming();
    const int port = payments.process().metrics_port();
    REQUIRE(test::eventually([&] { return test::http_get(port, "/readyz").first == 200; }));
    services("pg_ctl stop -m fast");
    std::string reason;
    const bool not_ready = test::eventually([&] {
        const auto [status, body] = test::http_get(port, "/readyz");
        reason = body;
        return status == 503;
    });
    // Bring Postgres back before checking, so a failure cannot leave it down.
    services("pg_ctl start -w");
    REQUIRE(not_ready);
    CHECK(reason.find("Postgres unreachable") != std::string::npos);
    CHECK(test::http_get(port, "/healthz").first == 200);
    CHECK(test::eventually([&] { return test::http_get(port, "/readyz").first == 200; }));
    payments.stop();
}
