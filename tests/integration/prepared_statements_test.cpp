// Handlers' prepared statements (Handler::prepare) against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <pqxx/transaction_base>

#include "running_worker.hpp"
#include "support.hpp"

namespace {

const idemq::RetryPolicy kOneAttempt{.immediate_retries = 0, .delayed_retries = 0};

// Records each message through its own prepared statement; the body goes as
// a binary parameter, so NUL bytes arrive whole. Bodies "swallow" also run a
// statement that fails (a duplicate key) and ignore its error.
class PreparedRecorder final : public idemq::Handler {
public:
    explicit PreparedRecorder(std::string sql = "INSERT INTO test.effects (key, body) VALUES ($1, $2)")
        : sql_(std::move(sql)) {}
    void prepare(idemq::Statements& statements) override {
        statements.add("test_record", sql_);
        statements.add("test_once", "INSERT INTO test.once (id) VALUES (1)");
    }
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        tx.exec_prepared("test_record", std::string(ctx.idempotency_key()),
                         pqxx::binarystring(message.body().data(), message.body().size()));
        if (message.body() == "swallow") {
            try {
                tx.exec_prepared("test_once");
            } catch (const pqxx::sql_error&) {
                // Ignored, as a careless handler would: Postgres has aborted the transaction.
            }
        }
    }

private:
    std::string sql_;
};

struct Fixture {
    test::Database db;
    test::Vhost vhost;
    Fixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec(
            "CREATE SCHEMA test; CREATE TABLE test.effects (key text, body bytea); "
            "CREATE TABLE test.once (id int PRIMARY KEY); INSERT INTO test.once VALUES (1)");
        tx.commit();
    }
    [[nodiscard]] idemq::WorkerOptions options() const {
        return {
            .amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 8, .outbox_relay = false};
    }
    [[nodiscard]] long long effects() const { return db.count("SELECT count(*) FROM test.effects"); }
};

std::vector<test::Outgoing> messages(const std::string& prefix, int count) {
    std::vector<test::Outgoing> out;
    for (int i = 0; i < count; ++i) {
        out.push_back({.body = std::string("raw\0bytes", 9), .message_id = prefix + std::to_string(i)});
    }
    return out;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "a handler's prepared statements run, and run again after its connections are killed" *
                               test::concurrency) {
    test::RunningWorker worker(options(), [](idemq::Worker& w) {
        w.add_handler({.handler = "prepared"}, std::make_unique<PreparedRecorder>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("prepared"); }));
    broker.publish("", "prepared", messages("a-", 4));
    REQUIRE(test::eventually([&] { return worker.stats().processed == 4; }));
    // The NUL byte and what follows it arrived: a binary parameter.
    CHECK(db.count("SELECT count(*) FROM test.effects WHERE octet_length(body) = 9") == 4);

    // As a Postgres restart would: every handler connection ends, and the
    // next delivery finds a new one with the statements prepared again.
    pqxx::connection admin(test::base_database_url());
    pqxx::nontransaction tx(admin);
    const auto killed = tx.exec_params(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE "
        "'idemq prepared #%'",
        db.name());
    CHECK(killed.size() >= 1);
    broker.publish("", "prepared", messages("b-", 4));
    REQUIRE(test::eventually([&] { return worker.stats().processed == 8; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.empty());
    CHECK(effects() == 8);
}

TEST_CASE_FIXTURE(Fixture,
                  "a handler statement Postgres cannot prepare stops the start, naming handler and statement") {
    auto own_thread = options();
    own_thread.handle_signals = false;  // run() on the test's thread: signals stay the test's
    idemq::Worker worker(own_thread);
    worker.add_handler({.handler = "prepared"},
                       std::make_unique<PreparedRecorder>("INSERT INTO test.not_migrated (key, body) VALUES ($1, $2)"));
    std::string error;
    try {
        (void)worker.run();
    } catch (const idemq::ConfigError& e) {
        error = e.what();
    }
    CHECK(error.find("handler 'prepared'") != std::string::npos);
    CHECK(error.find("'test_record'") != std::string::npos);
    CHECK(error.find("\"test.not_migrated\" does not exist") != std::string::npos);
    // Nothing consumed: the queue was never even declared.
    test::Broker broker(vhost.url());
    CHECK(!broker.consumed("prepared"));
}

TEST_CASE_FIXTURE(Fixture, "a prepared statement's failure that the handler swallows is never acked as committed") {
    test::RunningWorker worker(options(), [](idemq::Worker& w) {
        w.add_handler({.handler = "prepared", .retry = kOneAttempt}, std::make_unique<PreparedRecorder>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("prepared"); }));
    broker.publish_one("", "prepared", {.body = "swallow", .message_id = "s-1"});
    broker.publish("", "prepared", messages("ok-", 3));
    REQUIRE(test::eventually([&] { return broker.ready("prepared.dlq") == 1 && worker.stats().processed == 3; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(db.count("SELECT count(*) FROM test.effects WHERE key = 's-1'") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key = 's-1'") == 0);
    CHECK(effects() == 3);
}
