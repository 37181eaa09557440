// Metrics, health checks, logs, tracing and inbox retention, against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "charge_handler.hpp"
#include "payments_schema.hpp"
#include "payments_worker.hpp"
#include "running_worker.hpp"
#include "support.hpp"

TEST_CASE("after a known mix of messages the /metrics counters equal it exactly, and promtool accepts them" *
          test::concurrency) {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", test::payments_schema());
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [](idemq::Worker& w) {
        w.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge") && worker.metrics_port() > 0; }));
    const int port = worker.metrics_port();
    CHECK(test::http_get(port, "/healthz") == std::pair<int, std::string>{200, R"({"status":"ok"})"});
    REQUIRE(test::eventually([&] { return test::http_get(port, "/readyz").first == 200; }));

    broker.publish("payments", "charge",
                   {{.body = test::charge("A1", 100), .message_id = "n-1"},
                    {.body = test::charge("A2", 200), .message_id = "n-2"},
                    {.body = test::charge("flaky-9", 300), .message_id = "retried"},
                    {.body = "{nope", .message_id = "bad"}});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 3; }));
    broker.publish("payments", "charge",
                   {{.body = test::charge("A1", 100), .message_id = "n-1"},
                    {.body = test::charge("A1", 999), .message_id = "n-2"}});
    const test::Labels h{{"handler", "payments.charge"}};
    const auto with = [&](const std::string& key, const std::string& value) {
        auto labels = h;
        labels[key] = value;
        return labels;
    };
    // A dead letter is in the DLQ as soon as the broker routes it, a moment before the worker has the confirm
    // and counts it; wait until every one of the six deliveries is settled and counted.
    REQUIRE(test::eventually([&] {
        const auto stats = worker.stats();
        std::uint64_t dead = 0;
        for (const auto& [reason, count] : stats.dead_lettered) dead += count;
        return broker.ready("payments.charge.dlq") == 2 && stats.duplicates == 1 && dead == 2 &&
               test::Metrics(test::http_get(port, "/metrics").second)
                       .value("idemq_end_to_end_latency_seconds_count", h) == 6;
    }));

    const auto [status, text] = test::http_get(port, "/metrics");
    REQUIRE(status == 200);
    const test::Metrics metrics(text);
    const auto sample = [&](const std::string& name, const test::Labels& labels) {
        return metrics.value(name, labels);
    };
    CHECK(sample("idemq_messages_received_total", h) == 6);
    CHECK(sample("idemq_messages_processed_total", h) == 3);
    CHECK(sample("idemq_duplicates_total", h) == 1);
    CHECK(sample("idemq_key_conflicts_total", h) == 1);
    CHECK(sample("idemq_retries_scheduled_total", with("kind", "immediate")) == 2);
    CHECK(sample("idemq_retries_scheduled_total", with("kind", "delayed")) == 0);
    CHECK(sample("idemq_dead_lettered_total", with("reason", "permanent-error")) == 1);
    CHECK(sample("idemq_dead_lettered_total", with("reason", "idempotency-key-conflict")) == 1);
    CHECK(sample("idemq_in_doubt_commits_total", h) == 0);
    CHECK(sample("idemq_in_flight", h) == 0);
    CHECK(sample("idemq_consumer_paused", {}) == 0);
    CHECK(sample("idemq_handler_duration_seconds_count", h) == 3);
    // Every settled delivery: 3 processed, 1 duplicate, 2 dead-lettered.
    CHECK(sample("idemq_end_to_end_latency_seconds_count", h) == 6);
    CHECK(sample("idemq_reconnects_total", {{"component", "broker"}}) == 0);

    const std::string file = "/tmp/" + test::unique_name("metrics") + ".txt";
    std::ofstream(file) << text;
    const int promtool = std::system(("promtool check metrics < " + file + " > " + file + ".out 2>&1").c_str());
    std::stringstream lint;
    lint << std::ifstream(file + ".out").rdbuf();
    CHECK_MESSAGE(promtool == 0, lint.str());
    std::remove(file.c_str());
    std::remove((file + ".out").c_str());
    worker.stop();
}

TEST_CASE("every log line of a worker is JSON, message lines carry the three ids, and no password appears") {
    test::PaymentsWorker payments({.start = false});
    test::Broker& broker = payments.broker();
    payments.env().erase("IDEMQ_LOG_FORMAT");  // auto: JSON when not on a terminal
    payments.start();
    payments.wait_consuming();
    payments.publish({{.body = test::charge("A1", 1), .message_id = "j-1", .correlation_id = "order-7"},
                      {.body = test::charge("A1", 1), .message_id = "j-1", .correlation_id = "order-7"},
                      {.body = "{bad", .message_id = "j-2"},
                      {.body = test::charge("flaky-2", 5), .message_id = "j-3"}});
    REQUIRE(test::eventually([&] { return broker.ready("payments.charge.dlq") == 1 && payments.ledger_rows() == 2; }));
    payments.stop();

    // The log format is what this test is about: it reads the output.
    const std::string output = payments.output();
    const std::string password = "idemq-secret";
    CHECK(output.find(password) == std::string::npos);
    for (const auto& dead : broker.peek_all("payments.charge.dlq")) {
        for (const auto& [name, value] : dead.properties.headers_as_text())
            CHECK(value.find(password) == std::string::npos);
    }
    std::istringstream lines(output);
    int message_lines = 0;
    bool saw_redacted_url = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("summary: ")) continue;  // the stdout summary, not a log line
        const auto json = nlohmann::json::parse(line, nullptr, false);
        REQUIRE_MESSAGE(!json.is_discarded(), "not JSON: " << line);
        CHECK(json.contains("ts"));
        CHECK(json.contains("level"));
        if (json.value("msg", "").find(":***@") != std::string::npos) saw_redacted_url = true;
        if (!json.contains("message_id")) continue;
        ++message_lines;
        CHECK(json["handler"] == "payments.charge");
        CHECK_FALSE(json["message_id"].get<std::string>().empty());
        CHECK_FALSE(json["correlation_id"].get<std::string>().empty());
        if (json["message_id"] == "j-1") CHECK(json["correlation_id"] == "order-7");
    }
    CHECK(message_lines >= 4);  // duplicate, dead letter, two retries
    CHECK(saw_redacted_url);
}

TEST_CASE("idemqctl trace finds a message in the inbox, in a delay queue and in the DLQ") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    struct Picky final : idemq::Handler {
        void handle(const idemq::Message& message, pqxx::transaction_base&, idemq::Context&) override {
            if (message.body() == "later") throw std::runtime_error("try again in an hour");
            if (message.body() == "never") throw idemq::PermanentError("cannot be done");
        }
    };
    const idemq::RetryPolicy hourly{.immediate_retries = 0,
                                    .delayed_retries = 1,
                                    .delayed_base = std::chrono::hours(1),
                                    .delayed_cap = std::chrono::hours(1),
                                    .jitter = false};
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [&](idemq::Worker& w) {
        w.add_handler({.handler = "picky", .retry = hourly}, std::make_unique<Picky>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("picky"); }));
    broker.publish("", "picky",
                   {{.body = "fine", .message_id = "done-1"},
                    {.body = "later", .message_id = "wait-1"},
                    {.body = "never", .message_id = "dead-1"}});
    REQUIRE(test::eventually([&] {
        const auto s = worker.stats();
        return s.processed == 1 && s.delayed_retries == 1 && s.dead_lettered.size() == 1;
    }));
    const auto trace = [&](const std::string& id) {
        test::Process process(test::bin("idemqctl"), {"trace", id, "--queue", "picky"},
                              {{"IDEMQ_AMQP_URL", vhost.url()}, {"IDEMQ_DATABASE_URL", db.url()}});
        const int code = process.wait();
        return std::pair{code, process.output()};
    };
    const auto [done_code, done] = trace("done-1");
    CHECK(done_code == 0);
    CHECK(done.find("inbox: processed by handler 'picky'") != std::string::npos);
    const auto [wait_code, waiting] = trace("wait-1");
    CHECK(wait_code == 0);
    CHECK(waiting.find("retry: waiting in idemq.delay.2048000ms for attempt 2 of queue 'picky'") != std::string::npos);
    CHECK(waiting.find("try again in an hour") != std::string::npos);
    const auto [dead_code, dead] = trace("dead-1");
    CHECK(dead_code == 0);
    CHECK(dead.find("dlq: in picky.dlq with reason permanent-error") != std::string::npos);
    const auto [missing_code, missing] = trace("nowhere");
    CHECK(missing_code == 1);
    // Tracing leaves every queue as it was.
    CHECK(
        test::eventually([&] { return broker.ready("picky.dlq") == 1 && broker.ready("idemq.delay.2048000ms") == 1; }));
    worker.stop();
}

TEST_CASE("inbox prune removes only rows older than the window, while a worker processes load") {
    test::PaymentsWorker payments({.start = false});
    const test::Database& db = payments.db();
    {
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec(
            "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id, received_at) "
            "SELECT 'payments.charge', convert_to('old-' || i, 'UTF8'), sha256(i::text::bytea), "
            "convert_to('old-' || i, 'UTF8'), '', now() - interval '20 days' "
            "FROM generate_series(1, 5000) AS i");
        tx.exec(
            "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id, received_at) "
            "SELECT 'payments.charge', convert_to('recent-' || i, 'UTF8'), sha256(i::text::bytea), "
            "convert_to('recent-' || i, 'UTF8'), '', now() - interval '13 days' "
            "FROM generate_series(1, 100) AS i");
        tx.commit();
    }
    payments.start();
    payments.wait_consuming();
    std::vector<test::Outgoing> load;
    for (int i = 0; i < 2000; ++i)
        load.push_back(
            {.body = test::charge("A" + std::to_string(i % 7), 1), .message_id = "new-" + std::to_string(i)});
    payments.publish(load);
    test::Process prune(test::bin("idemqctl"), {"inbox", "prune", "--older-than", "14d", "--batch", "500"},
                        {{"IDEMQ_DATABASE_URL", db.url()}});
    CHECK_MESSAGE(prune.wait() == 0, prune.output());
    CHECK(prune.output().find("pruned 5000 inbox row(s)") != std::string::npos);
    REQUIRE(test::eventually([&] { return db.count("SELECT count(*) FROM payments.ledger") == 2000; }));
    payments.stop();
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key LIKE 'old-%'") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key LIKE 'recent-%'") == 100);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key LIKE 'new-%'") == 2000);
    // That nothing went wrong meanwhile is in the log: no line at level error.
    CHECK(payments.output().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("the worker refuses to start when inbox retention is shorter than a retry schedule, and says why") {
    test::Database db;
    test::Vhost vhost;
    idemq::Worker worker({.amqp_url = vhost.url(),
                          .database_url = db.url(),
                          .inbox_retention = std::chrono::hours(2),
                          .handle_signals = false});
    struct Nothing final : idemq::Handler {
        void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {}
    };
    worker.add_handler(
        {.handler = "long",
         .retry = {.delayed_retries = 3, .delayed_base = std::chrono::hours(1), .delayed_cap = std::chrono::hours(1)}},
        std::make_unique<Nothing>());
    CHECK_THROWS_WITH_AS((void)worker.run(), doctest::Contains("IDEMQ_INBOX_RETENTION"), idemq::ConfigError);
}
