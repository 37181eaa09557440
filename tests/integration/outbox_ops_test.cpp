// Running the outbox: retention of published rows, the start-up check of
// inbox retention against the relay's retry schedule, the outbox's metrics,
// readiness under relay lag, and idemqctl trace over outbox rows.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/transaction>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <sstream>

#include "amqp/connection.hpp"
#include "outbox/relay.hpp"
#include "payments_worker.hpp"
#include "running_worker.hpp"
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
    // Exchange ops.events, every key of it routed to queue ops.sink.
    void declare_sink() const {
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "outbox ops setup"});
        setup.declare_exchange("ops.events", "topic");
        setup.declare_queue("ops.sink");
        setup.bind_queue("ops.sink", "ops.events", "#");
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

// Stages one event per message, to the exchange the body names ("throw"
// stages and then fails the handling for good).
struct Stager final : idemq::Handler {
    void handle(const idemq::Message& message, pqxx::transaction_base&, idemq::Context& ctx) override {
        const std::string body(message.body());
        ctx.outbox().publish(
            {.exchange = body == "missing" ? "ops.missing" : "ops.events", .routing_key = "staged", .body = body});
        if (body == "throw") throw idemq::PermanentError("staged, then refused");
    }
};

// The batch form: two events for every message of the batch.
struct BatchStager final : idemq::BatchHandler {
    void handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base&,
                      idemq::BatchContext& ctx) override {
        for (const auto& message : messages) {
            for (int i = 0; i < 2; ++i) {
                ctx.outbox(message).publish(
                    {.exchange = "ops.events", .routing_key = "batch", .body = std::string(message.body())});
            }
        }
    }
};

// A worker in this process running Stager on queue "stager", and its relay.
struct StagingWorker : OutboxOps {
    test::Broker broker{vhost.url()};
    std::unique_ptr<test::RunningWorker> worker;

    StagingWorker() {
        declare_sink();
        worker = std::make_unique<test::RunningWorker>(
            idemq::WorkerOptions{.amqp_url = vhost.url(), .database_url = db.url()},
            [](idemq::Worker& w) { w.add_handler({.handler = "stager"}, std::make_unique<Stager>()); });
        REQUIRE(test::eventually([&] { return broker.consumed("stager") && worker->metrics_port() > 0; }));
    }
    [[nodiscard]] test::Metrics metrics() const {
        return test::Metrics(test::http_get(worker->metrics_port(), "/metrics").second);
    }
};

}  // namespace

TEST_CASE_FIXTURE(OutboxOps, "the lease holder deletes published rows older than the retention, in batches") {
    // More than one batch of old rows, and young ones that stay.
    add_published(1, 2500, "8 days");
    add_published(10'001, 10, "6 days");
    {
        OutboxRelay relay(settings(), &telemetry);
        REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM idemq.outbox_published") == 10; }));
        CHECK(db.count("SELECT min(id) FROM idemq.outbox_published") == 10'001);
        const test::Metrics metrics(telemetry.render());
        CHECK(metrics.value("idemq_outbox_lease_held") == 1);
        CHECK(metrics.value("idemq_outbox_lease_epoch") == 1);
    }
    // Stopped, it let the lease go.
    CHECK(test::Metrics(telemetry.render()).value("idemq_outbox_lease_held") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox_lease WHERE expires_at > now()") == 0);
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

TEST_CASE_FIXTURE(StagingWorker, "/metrics counts committed staging, publish latency and the lease this worker holds" *
                                     test::concurrency) {
    broker.publish("", "stager",
                   {{.body = "a", .message_id = "1"},
                    {.body = "b", .message_id = "2"},
                    {.body = "throw", .message_id = "3"},
                    {.body = "c", .message_id = "4"}});
    REQUIRE(test::eventually([&] {
        return broker.ready("ops.sink") == 3 && metrics().value("idemq_outbox_published_total") == 3 &&
               worker->stats().dead_lettered.size() == 1;
    }));
    const test::Metrics m = metrics();
    // The handling that staged and then threw rolled its row back: not counted.
    CHECK(m.value("idemq_outbox_staged_total") == 3);
    CHECK(m.value("idemq_outbox_publish_latency_seconds_count") == 3);
    // Staged, woken at once and confirmed within a second, by the database's clock.
    CHECK(m.value("idemq_outbox_publish_latency_seconds_sum") > 0);
    CHECK(m.value("idemq_outbox_publish_latency_seconds_sum") < 3);
    CHECK(m.value("idemq_outbox_lease_held") == 1);
    CHECK(m.value("idemq_outbox_lease_epoch") == static_cast<double>(db.count("SELECT epoch FROM idemq.outbox_lease")));
}

TEST_CASE_FIXTURE(StagingWorker,
                  "/readyz stays ready while the outbox has a parked row and a backlog it cannot publish") {
    broker.publish("", "stager", {{.body = "missing", .message_id = "1"}, {.body = "missing", .message_id = "2"}});
    // Both refused (no such exchange) and waiting for their next attempt.
    REQUIRE(test::eventually([&] {
        const test::Metrics m = metrics();
        return m.value("idemq_outbox_publish_failures_total") >= 2 && m.value("idemq_outbox_pending_rows") == 2;
    }));
    // Parked as the relay parks a row, with its attempts spent: a failure
    // the relay records for it meanwhile keeps it parked.
    exec("UPDATE idemq.outbox SET attempts = 1000, parked_at = now() WHERE id = (SELECT min(id) FROM idemq.outbox)");
    REQUIRE(test::eventually([&] {
        const test::Metrics m = metrics();
        return m.value("idemq_outbox_parked_rows") == 1 && m.value("idemq_outbox_pending_rows") == 1 &&
               m.value("idemq_outbox_oldest_pending_seconds") > 0;
    }));
    CHECK(test::http_get(worker->metrics_port(), "/readyz").first == 200);
}

TEST_CASE("the example alert rules are valid, and the outbox alerts fire when their unit tests say") {
    const std::string docs = std::string(IDEMQ_SOURCE_DIR) + "/docs";
    const std::string out = test::unique_name("/tmp/idemq-alerts") + ".out";
    const int checked =
        std::system(fmt::format("promtool check rules {0}/prometheus-alerts.yml > {1} 2>&1 && cd {0} && "
                                "promtool test rules prometheus-alerts.test.yml >> {1} 2>&1",
                                docs, out)
                        .c_str());
    std::ifstream report(out);
    std::stringstream text;
    text << report.rdbuf();
    std::remove(out.c_str());
    CHECK_MESSAGE(checked == 0, text.str());
}

TEST_CASE_FIXTURE(OutboxOps, "idemqctl trace finds a message's outbox rows: waiting or parked, and published") {
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "ops.events", .routing_key = "r", .body = "x", .message_id = "traced"});
        idemq::outbox::stage(tx, {.exchange = "ops.events", .routing_key = "r", .body = "y", .message_id = "traced"});
        tx.commit();
    }
    exec(
        "UPDATE idemq.outbox SET attempts = 3, parked_at = now(), last_error = 'NO_ROUTE' "
        "WHERE id = (SELECT min(id) FROM idemq.outbox)");
    exec(
        "INSERT INTO idemq.outbox_published (id, exchange, routing_key, message_id, staged_at, attempts, relay, epoch) "
        "VALUES (1000, 'ops.events', 'r', 'traced', now(), 2, 'host/relay-1', 7)");
    const auto trace = [&](const std::string& id) {
        test::Process process(test::bin("idemqctl"), {"trace", id},
                              {{"IDEMQ_AMQP_URL", vhost.url()}, {"IDEMQ_DATABASE_URL", db.url()}});
        const int code = process.wait();
        return std::pair{code, process.output()};
    };
    const auto [code, out] = trace("traced");
    CHECK(code == 0);
    CHECK(out.find("outbox: row 1 parked after 3 attempt(s), to exchange 'ops.events' routing key 'r'") !=
          std::string::npos);
    CHECK(out.find("(last error: NO_ROUTE)") != std::string::npos);
    CHECK(out.find("outbox: row 2 pending after 0 attempt(s)") != std::string::npos);
    CHECK(out.find("outbox: row 1000 published at ") != std::string::npos);
    CHECK(out.find("by relay 'host/relay-1' in epoch 7 after 2 attempt(s)") != std::string::npos);
    const auto [missing_code, missing] = trace("untraced");
    CHECK(missing_code == 1);
    CHECK(missing.find("the outbox") != std::string::npos);
}

TEST_CASE_FIXTURE(OutboxOps,
                  "a standalone relay serves /metrics on IDEMQ_METRICS_ADDR: its lease and what it published") {
    declare_sink();
    {
        pqxx::work tx(connection);
        for (int i = 0; i < 3; ++i) {
            idemq::outbox::stage(tx, {.exchange = "ops.events", .routing_key = "r", .body = std::to_string(i)});
        }
        tx.commit();
    }
    const int port = test::free_loopback_port();
    test::Process relay(test::bin("idemqctl"), {"relay"},
                        {{"IDEMQ_AMQP_URL", vhost.url()},
                         {"IDEMQ_DATABASE_URL", db.url()},
                         {"IDEMQ_METRICS_ADDR", fmt::format("127.0.0.1:{}", port)}});
    const auto published = [&] {
        const auto answer = test::try_http_get(port, "/metrics");
        return answer && answer->first == 200 &&
               test::Metrics(answer->second).value("idemq_outbox_published_total") == 3;
    };
    REQUIRE_MESSAGE(test::eventually(published), relay.output());
    const test::Metrics metrics(test::http_get(port, "/metrics").second);
    CHECK(metrics.value("idemq_outbox_lease_held") == 1);
    CHECK(metrics.value("idemq_outbox_publish_latency_seconds_count") == 3);
    CHECK(test::http_get(port, "/healthz").first == 200);
    test::stop_gracefully(relay);
}

TEST_CASE_FIXTURE(OutboxOps, "a batch handler's staged rows are counted once its batch commits") {
    test::Broker broker(vhost.url());
    test::RunningWorker worker(
        {.amqp_url = vhost.url(), .database_url = db.url(), .outbox_relay = false}, [](idemq::Worker& w) {
            w.add_batch_handler({.handler = "batcher"}, std::make_unique<BatchStager>(), {.max_messages = 10});
        });
    REQUIRE(test::eventually([&] { return broker.consumed("batcher") && worker.metrics_port() > 0; }));
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 5; ++i) messages.push_back({.body = "b" + std::to_string(i), .message_id = std::to_string(i)});
    broker.publish("", "batcher", messages);
    REQUIRE(test::eventually([&] { return worker.stats().processed == 5; }));
    CHECK(test::Metrics(test::http_get(worker.metrics_port(), "/metrics").second).value("idemq_outbox_staged_total") ==
          10);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox") == 10);  // no relay here: all still pending
}

TEST_CASE_FIXTURE(OutboxOps, "a pruning statement that fails does not hold up publishing") {
    declare_sink();
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "ops.events", .routing_key = "r", .body = "still goes"});
        tx.commit();
    }
    // A retention so long that now() minus it is out of Postgres's range.
    auto long_retention = settings();
    long_retention.retention = std::chrono::seconds(1'000'000'000'000LL);
    OutboxRelay relay(long_retention, &telemetry);
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.ready("ops.sink") == 1; }));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox") == 0);
}
