// Outages of the shared services themselves: Postgres restarted, the RabbitMQ
// node restarted. ctest runs these alone (RUN_SERIAL): every other test would
// see the outage too.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <map>

#include "support.hpp"

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
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    test::Process worker(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
    broker.publish("payments", "charge", messages);
    REQUIRE(test::eventually([&] { return db.try_count("SELECT count(*) FROM payments.ledger") >= 300; }));
    services("pg_ctl restart -m fast");
    REQUIRE_MESSAGE(test::eventually(
                        [&] {
                            return db.try_count("SELECT count(*) FROM payments.ledger") == 2000 &&
                                   broker.ready("payments.charge") == 0;
                        },
                        std::chrono::seconds(120)),
                    worker.output());
    test::stop_gracefully(worker);
    test::check_exactly_once(db, broker, 2000, expected);
    CHECK(test::summary_value(worker.output(), "dead_lettered") == 0);
    CHECK(test::summary_value(worker.output(), "immediate_retries") == 0);
    CHECK(test::summary_value(worker.output(), "delayed_retries") == 0);
    CHECK(worker.output().find("Postgres connection lost") != std::string::npos);
    CHECK(worker.output().find("pausing consumption") != std::string::npos);
}

TEST_CASE(
    "the broker node restarted while messages flow: the worker reconnects by itself and processes everything once") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    test::Process worker(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
    {
        test::Broker broker(vhost.url());
        REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
        broker.publish("payments", "charge", messages);
    }
    REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM payments.ledger") >= 300; }));
    services("rabbitmq restart");
    REQUIRE_MESSAGE(
        test::eventually([&] { return worker.output().find("reconnected to the broker") != std::string::npos; },
                         std::chrono::seconds(90)),
        worker.output());
    test::Broker broker(vhost.url());
    REQUIRE_MESSAGE(test::eventually(
                        [&] {
                            return db.count("SELECT count(*) FROM payments.ledger") == 2000 &&
                                   broker.ready("payments.charge") == 0;
                        },
                        std::chrono::seconds(120)),
                    worker.output());
    test::stop_gracefully(worker);
    test::check_exactly_once(db, broker, 2000, expected);
    CHECK(test::summary_value(worker.output(), "broker_reconnects") >= 1);
    CHECK(test::summary_value(worker.output(), "dead_lettered") == 0);
}

TEST_CASE("/readyz turns not-ready while Postgres is stopped, and ready again after") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Process worker(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
    int port = 0;
    REQUIRE(test::eventually([&] {
        const std::string output = worker.output();
        const auto at = output.find("health checks on http://127.0.0.1:");
        if (at == std::string::npos) return false;
        port = std::stoi(output.substr(at + 34));
        return true;
    }));
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
    test::stop_gracefully(worker);
}
