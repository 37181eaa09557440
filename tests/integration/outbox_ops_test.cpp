// Running the outbox: retention of published rows, the start-up check of
// inbox retention against the relay's retry schedule, the outbox's metrics,
// readiness under relay lag, and idemqctl trace over outbox rows.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/transaction>

#include "outbox/relay.hpp"
#include "support.hpp"

using idemq::detail::OutboxRelay;

namespace {

struct OutboxOps {
    test::Database db;
    test::Vhost vhost;
    pqxx::connection connection;
    idemq::detail::Telemetry telemetry{{}};

    OutboxOps() : connection(db.url()) { idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations()); }

    [[nodiscard]] idemq::detail::RelaySettings settings() const {
        return {.amqp_url = vhost.url(), .database_url = db.url()};
    }
    void exec(const std::string& sql) {
        pqxx::work tx(connection);
        tx.exec(sql);
        tx.commit();
    }
    // `rows` published rows with ids from `first`, published `age` ago.
    void add_published(int first, int rows, const std::string& age) {
        exec(
            fmt::format("INSERT INTO idemq.outbox_published (id, exchange, routing_key, message_id, staged_at, "
                        "published_at, attempts, relay, epoch) "
                        "SELECT i, 'events', 'a', ('m-' || i)::bytea, now() - interval '{0}', now() - interval '{0}', "
                        "1, 'earlier', 1 FROM generate_series({1}, {2}) i",
                        age, first, first + rows - 1));
    }
};

}  // namespace

TEST_CASE_FIXTURE(OutboxOps, "the lease holder deletes published rows older than the retention, in batches") {
    // More than one batch of old rows, and young ones that stay.
    add_published(1, 2500, "8 days");
    add_published(10'001, 10, "6 days");
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM idemq.outbox_published") == 10; }));
    CHECK(db.count("SELECT min(id) FROM idemq.outbox_published") == 10'001);
}

TEST_CASE("a worker with a relay refuses to start when inbox retention does not outlast the relay's retries") {
    test::Database db;
    test::Vhost vhost;
    struct Nothing final : idemq::Handler {
        void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {}
    };
    // 1 h of retention against 10 attempts (511 s of waits) plus the 1 h margin.
    idemq::Worker worker({.amqp_url = vhost.url(),
                          .database_url = db.url(),
                          .inbox_retention = std::chrono::hours(1),
                          .handle_signals = false});
    worker.add_handler({.handler = "quiet"}, std::make_unique<Nothing>());
    try {
        (void)worker.run();
        FAIL("expected a ConfigError");
    } catch (const idemq::ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.find("IDEMQ_INBOX_RETENTION") != std::string::npos);
        CHECK(what.find("IDEMQ_OUTBOX_MAX_ATTEMPTS=10 (511 s)") != std::string::npos);
    }
}
