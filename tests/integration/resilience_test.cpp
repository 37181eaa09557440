// Outages that do not take the shared services down: Postgres backends of the
// test's own database terminated, broker connections of the test's own vhost
// closed, a worker stopped under load. They run in parallel with the others.
#include <doctest/doctest.h>

#include <csignal>
#include <map>

#include "support.hpp"

namespace {

using std::chrono::milliseconds;

long long ledger_rows(test::Database& db) { return db.try_count("SELECT count(*) FROM payments.ledger"); }

}  // namespace

TEST_CASE(
    "Postgres backends terminated while 2,000 messages flow: all processed once, none dead-lettered, no attempt "
    "charged") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    // The queue and its binding exist before the worker starts, so the
    // messages wait there and flow the moment it consumes.
    {
        test::Process declare(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
        REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
        test::stop_gracefully(declare);
    }
    broker.publish("payments", "charge", messages);
    test::Process worker(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
    for (const long long at : {200, 900}) {
        REQUIRE(test::eventually([&] { return ledger_rows(db) >= at; }, std::chrono::seconds(60)));
        db.terminate_backends();
    }
    REQUIRE_MESSAGE(test::eventually([&] { return ledger_rows(db) == 2000 && broker.ready("payments.charge") == 0; },
                                     std::chrono::seconds(120)),
                    "ledger at " << ledger_rows(db) << "\n"
                                 << worker.output());
    test::stop_gracefully(worker);
    test::check_exactly_once(db, broker, 2000, expected);
    CHECK(test::summary_value(worker.output(), "dead_lettered") == 0);
    CHECK(test::summary_value(worker.output(), "immediate_retries") == 0);
    CHECK(test::summary_value(worker.output(), "delayed_retries") == 0);
    CHECK(worker.output().find("Postgres connection lost") != std::string::npos);
}

TEST_CASE("broker connections closed while messages flow: the worker reconnects and processes everything once") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    test::Process worker(test::bin("payments-worker"), {"run"}, test::worker_env(vhost, db));
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
    broker.publish("payments", "charge", messages);
    REQUIRE(test::eventually([&] { return ledger_rows(db) >= 300; }, std::chrono::seconds(60)));
    vhost.close_connections();
    REQUIRE_MESSAGE(
        test::eventually([&] { return worker.output().find("reconnected to the broker") != std::string::npos; },
                         std::chrono::seconds(60)),
        worker.output());
    // A fresh test connection: ours was closed with the others.
    test::Broker after(vhost.url());
    REQUIRE_MESSAGE(test::eventually([&] { return ledger_rows(db) == 2000 && after.ready("payments.charge") == 0; },
                                     std::chrono::seconds(120)),
                    "ledger at " << ledger_rows(db) << "\n"
                                 << worker.output());
    test::stop_gracefully(worker);
    test::check_exactly_once(db, after, 2000, expected);
    CHECK(test::summary_value(worker.output(), "broker_reconnects") >= 1);
    CHECK(test::summary_value(worker.output(), "dead_lettered") == 0);
}

TEST_CASE("SIGTERM under load exits 0 within the grace period, and a restart processes everything once") {
    test::Database db;
    test::Vhost vhost;
    test::migrate_payments(db);
    test::Broker broker(vhost.url());
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(2000, expected);
    auto env = test::worker_env(vhost, db);
    env["IDEMQ_SHUTDOWN_GRACE_MS"] = "5000";
    {
        test::Process worker(test::bin("payments-worker"), {"run"}, env);
        REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
        broker.publish("payments", "charge", messages);
        REQUIRE(test::eventually([&] { return ledger_rows(db) >= 400; }, std::chrono::seconds(60)));
        const auto signalled = std::chrono::steady_clock::now();
        test::stop_gracefully(worker);
        const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - signalled);
        INFO("stopped in " << took.count() << " ms");
        CHECK(took < milliseconds(5'000 + 1'000));
    }
    CHECK(ledger_rows(db) < 2000);
    test::Process restarted(test::bin("payments-worker"), {"run"}, env);
    REQUIRE(test::eventually([&] { return ledger_rows(db) == 2000 && broker.ready("payments.charge") == 0; },
                             std::chrono::seconds(120)));
    test::stop_gracefully(restarted);
    test::check_exactly_once(db, broker, 2000, expected);
}
