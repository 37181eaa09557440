// Misbehaving handlers that do not return: a shutdown must still end within a
// bounded time after the grace period, and their deliveries go back to the queue.
#include <doctest/doctest.h>

#include <idemq/migration.hpp>

#include <pqxx/pqxx>

#include <poll.h>

#include <csignal>

#include "payments_worker.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kGrace{1'000};
// What the worker promises after the grace (Runtime::kHardExitBound), plus
// slack for a loaded machine.
constexpr milliseconds kExitBound{3'000 + 2'000};

long long waiting_on_locks(const test::Database& db) {
    return db.try_count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'");
}

// SIGTERM, then the exit code and how long the exit took.
std::pair<int, milliseconds> terminate_and_time(test::Process& worker) {
    const auto signalled = Clock::now();
    worker.signal(SIGTERM);
    const int code = worker.wait(std::chrono::seconds(60));
    return {code, std::chrono::duration_cast<milliseconds>(Clock::now() - signalled)};
}

}  // namespace

TEST_CASE(
    "SIGTERM while a handler waits on a row lock: the worker exits soon after the grace, the charge is booked "
    "once later") {
    test::PaymentsWorker payments(
        {.env = {{"IDEMQ_SHUTDOWN_GRACE_MS", std::to_string(kGrace.count())}, {"IDEMQ_CONCURRENCY", "1"}},
         .start = false});
    const test::Database& db = payments.db();
    test::Broker& broker = payments.broker();
    // The test holds the lock on the account's balance row that the charge
    // must update.
    pqxx::connection holder(db.url());
    {
        pqxx::work setup(holder);
        setup.exec("INSERT INTO payments.balances (account, balance_cents) VALUES ('L1', 0)");
        setup.commit();
    }
    auto lock = std::make_unique<pqxx::work>(holder);
    lock->exec("SELECT 1 FROM payments.balances WHERE account = 'L1' FOR UPDATE");
    {
        test::WorkerProcess& worker = payments.start();
        payments.wait_consuming();
        payments.publish({{.body = test::charge("L1", 700), .message_id = "locked-1"}});
        REQUIRE_MESSAGE(test::eventually([&] { return waiting_on_locks(db) >= 1; }), worker.output());
        const auto [code, took] = terminate_and_time(worker);
        INFO("exited with " << code << " after " << took.count() << " ms\n" << worker.output());
        CHECK(took < kGrace + kExitBound);
        // The lock wait was cancelled, so the handler thread returned: a clean exit.
        CHECK(code == 0);
    }
    // Nothing committed; the delivery is back in the queue.
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 0);
    CHECK(test::eventually([&] { return broker.ready("payments.charge") == 1; }));
    lock->abort();
    lock.reset();
    payments.start();
    payments.wait_booked(1, std::chrono::seconds(30));
    payments.stop();
    CHECK(db.count("SELECT count(*) FROM payments.ledger WHERE message_id = 'locked-1'") == 1);
    CHECK(db.scalar("SELECT balance_cents FROM payments.balances WHERE account = 'L1'") == "700");
    CHECK(broker.ready("payments.charge.dlq") == 0);
}

TEST_CASE(
    "SIGTERM with a handler that never returns: the worker exits with code 75 soon after the grace, the "
    "delivery goes back to the queue") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    test::Broker broker(vhost.url());
    auto env = test::worker_env(vhost, db);
    env["IDEMQ_SHUTDOWN_GRACE_MS"] = std::to_string(kGrace.count());
    test::Process worker(test::bin("stuck-worker"), {"run"}, env);
    REQUIRE(test::eventually([&] { return broker.consumed("stuck"); }));
    broker.publish_one("", "stuck", {.body = "forever", .message_id = "stuck-1"});
    // In the handler: its transaction holds the claim and waits, idle. (No
    // longer ready in the queue is not enough: the job may still wait for
    // its thread, and a stop gives such a job back at once.)
    REQUIRE(test::eventually([&] {
        return db.count(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND state = 'idle in transaction'") >= 1;
    }));
    const auto [code, took] = terminate_and_time(worker);
    INFO("exited with " << code << " after " << took.count() << " ms\n" << worker.output());
    CHECK(took < kGrace + kExitBound);
    CHECK(code == 75);
    CHECK(test::eventually([&] { return broker.ready("stuck") == 1; }));
    const auto back = broker.peek_all("stuck");
    REQUIRE(back.size() == 1);
    CHECK(back.front().properties.message_id() == "stuck-1");
}

TEST_CASE(
    "in-process worker (handle_signals off): a handler waiting on a lock is cancelled after the grace and "
    "run() returns, the delivery back in the queue" *
    test::concurrency) {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    test::Broker broker(vhost.url());
    pqxx::connection holder(db.url());
    {
        pqxx::work setup(holder);
        setup.exec("CREATE TABLE contended (id integer PRIMARY KEY)");
        setup.exec("INSERT INTO contended VALUES (1)");
        setup.commit();
    }
    pqxx::work lock(holder);
    lock.exec("SELECT 1 FROM contended WHERE id = 1 FOR UPDATE");
    struct WaitsForLock final : idemq::Handler {
        void handle(const idemq::Message&, pqxx::transaction_base& tx, idemq::Context&) override {
            tx.exec("UPDATE contended SET id = id WHERE id = 1");
        }
    };
    auto worker = std::make_unique<test::RunningWorker>(
        idemq::WorkerOptions{
            .amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 1, .shutdown_grace = kGrace},
        [](idemq::Worker& w) {
            w.add_handler({.handler = "waiter", .queue = "waiter"}, std::make_unique<WaitsForLock>());
        });
    REQUIRE(test::eventually([&] { return broker.consumed("waiter"); }));
    broker.publish_one("", "waiter", {.body = "x", .message_id = "wait-1"});
    REQUIRE(test::eventually([&] { return waiting_on_locks(db) >= 1; }));
    const auto stopping = Clock::now();
    const idemq::WorkerStats stats = worker->stop();
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - stopping);
    INFO("stopped after " << took.count() << " ms");
    CHECK(took < kGrace + kExitBound);
    CHECK(stats.processed == 0);
    CHECK(test::eventually([&] { return broker.ready("waiter") == 1; }));
    CHECK(db.count("SELECT count(*) FROM idemq.inbox") == 0);
}

TEST_CASE("SIGTERM while the worker is still connecting to a Postgres that does not answer: it exits 0 at once") {
    // A listener that never accepts: the kernel completes the handshake, and
    // libpq waits for a server greeting that never comes.
    const test::LoopbackSocket listener(/*listening=*/true);
    test::Vhost vhost;
    test::Process worker(test::bin("payments-worker"), {"run"},
                         {{"IDEMQ_AMQP_URL", vhost.url()},
                          {"IDEMQ_DATABASE_URL", "postgresql://idemq@127.0.0.1:" + std::to_string(listener.port()) +
                                                     "/idemq?connect_timeout=30"}});
    // The listener turns readable once the worker's connection waits in its backlog.
    pollfd pending{.fd = listener.fd(), .events = POLLIN, .revents = 0};
    REQUIRE(::poll(&pending, 1, 10'000) == 1);
    REQUIRE(worker.running());
    const auto [code, took] = terminate_and_time(worker);
    CHECK_MESSAGE(code == 0, worker.output());
    CHECK(took < std::chrono::seconds(2));
}
