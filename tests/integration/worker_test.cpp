// Framework behaviour with test handlers, run in-process against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/transaction>
#include <pqxx/transaction_base>

#include <atomic>
#include <mutex>
#include <thread>

#include "running_worker.hpp"
#include "support.hpp"

namespace {

// Records each run in test.effects(handler, key, attempt, correlation_id).
class RecordingHandler : public idemq::Handler {
public:
    explicit RecordingHandler(std::string name) : name_(std::move(name)) {}
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        ++runs;
        tx.exec_params(
            "INSERT INTO test.effects (handler, key, attempt, correlation_id, body) VALUES ($1, $2, $3, $4, $5)", name_,
            std::string(ctx.idempotency_key()), ctx.attempt(), std::string(ctx.correlation_id()),
            std::string(message.body()));
        if (fail_first_runs.load() > 0) {
            --fail_first_runs;
            throw std::runtime_error("simulated transient failure after writing");
        }
    }
    std::atomic<int> runs{0};
    std::atomic<int> fail_first_runs{0};

private:
    std::string name_;
};

class HeaderKeyHandler final : public RecordingHandler {
public:
    using RecordingHandler::RecordingHandler;
    [[nodiscard]] std::string idempotency_key(const idemq::Message& message) const override {
        return std::string(message.header("x-operation-id").value_or(""));
    }
};

struct Fixture {
    test::Database db;
    test::Vhost vhost;
    Fixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec(
            "CREATE SCHEMA test; CREATE TABLE test.effects (handler text, key text, attempt int, "
            "correlation_id text, body text)");
        tx.commit();
    }
    [[nodiscard]] idemq::WorkerOptions options() const {
        return {.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 8};
    }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "two handlers bound to the same message each process it once") {
    auto* billing = new RecordingHandler("billing");
    auto* shipping = new RecordingHandler("shipping");
    test::RunningWorker worker(options(), [&](idemq::Worker& w) {
        w.add_handler({.handler = "billing",
                       .exchange = "orders",
                       .exchange_type = idemq::ExchangeType::kFanout,
                       .routing_keys = {"#"}},
                      std::unique_ptr<idemq::Handler>(billing));
        w.add_handler({.handler = "shipping",
                       .exchange = "orders",
                       .exchange_type = idemq::ExchangeType::kFanout,
                       .routing_keys = {"#"}},
                      std::unique_ptr<idemq::Handler>(shipping));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("billing") && broker.consumed("shipping"); }));
    const test::Outgoing order{.body = "order-1", .message_id = "o-1"};
    broker.publish("orders", "new", {order, order});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().duplicates == 4; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 2);
    CHECK(stats.duplicates == 2);
    CHECK(billing->runs == 1);
    CHECK(shipping->runs == 1);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key = 'o-1'") == 2);
}

TEST_CASE_FIXTURE(Fixture, "a handler may take its idempotency key from a header") {
    auto* handler = new HeaderKeyHandler("ops");
    test::RunningWorker worker(options(), [&](idemq::Worker& w) {
        w.add_handler({.handler = "ops"}, std::unique_ptr<idemq::Handler>(handler));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("ops"); }));
    // Two message ids, one operation: the header decides.
    broker.publish("", "ops",
                   {{.body = "same", .message_id = "a", .headers = {{"x-operation-id", "op-7"}}},
                    {.body = "same", .message_id = "b", .headers = {{"x-operation-id", "op-7"}}}});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().duplicates == 2; }));
    worker.stop();
    CHECK(handler->runs == 1);
    CHECK(db.scalar("SELECT key FROM test.effects") == "op-7");
}

TEST_CASE_FIXTURE(Fixture, "a failing handler's writes roll back with its inbox row, and the message is tried again") {
    auto* handler = new RecordingHandler("flaky");
    handler->fail_first_runs = 1;
    test::RunningWorker worker(options(), [&](idemq::Worker& w) {
        w.add_handler({.handler = "flaky"}, std::unique_ptr<idemq::Handler>(handler));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("flaky"); }));
    broker.publish_one("", "flaky", {.body = "x", .message_id = "f-1"});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 1; }));
    const auto stats = worker.stop();
    CHECK(stats.immediate_retries == 1);
    CHECK(handler->runs == 2);
    CHECK(db.count("SELECT count(*) FROM test.effects") == 1);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox") == 1);
    CHECK(broker.ready("flaky") == 0);
    CHECK(broker.ready("flaky.dlq") == 0);
}

TEST_CASE_FIXTURE(Fixture, "the handler sees the attempt and a correlation id that defaults to the message id") {
    auto* handler = new RecordingHandler("ctx");
    test::RunningWorker worker(options(), [&](idemq::Worker& w) {
        w.add_handler({.handler = "ctx"}, std::unique_ptr<idemq::Handler>(handler));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("ctx"); }));
    broker.publish("", "ctx",
                   {{.body = "1", .message_id = "c-1"},
                    {.body = std::string("bin\0ary\xff", 8), .message_id = "c-2", .correlation_id = "trace-9"}});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 2; }));
    worker.stop();
    CHECK(db.scalar("SELECT correlation_id FROM test.effects WHERE key = 'c-1'") == "c-1");
    CHECK(db.scalar("SELECT correlation_id FROM test.effects WHERE key = 'c-2'") == "trace-9");
    CHECK(db.count("SELECT attempt FROM test.effects WHERE key = 'c-1'") == 1);
    CHECK(db.scalar("SELECT encode(body_sha256, 'hex') FROM idemq.inbox WHERE idempotency_key = 'c-1'") ==
          "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b");
}

TEST_CASE_FIXTURE(Fixture, "with several handler threads acks are coalesced, and every message is acked exactly once" *
                               test::concurrency) {
    constexpr int kCount = 400;
    auto* handler = new RecordingHandler("many");
    idemq::WorkerOptions many = options();
    many.concurrency = 4;
    many.prefetch = 32;
    test::RunningWorker worker(
        many, [&](idemq::Worker& w) { w.add_handler({.handler = "many"}, std::unique_ptr<idemq::Handler>(handler)); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("many"); }));
    std::vector<test::Outgoing> messages;
    for (int i = 0; i < kCount; ++i)
        messages.push_back({.body = std::to_string(i), .message_id = "k-" + std::to_string(i)});
    broker.publish("", "many", messages);
    REQUIRE(test::eventually([&] { return worker.stats().deliveries_acked == kCount; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == kCount);
    CHECK(stats.deliveries_acked == kCount);
    CHECK(stats.acks_sent < static_cast<std::uint64_t>(kCount));
    // Nothing came back: no duplicate, no second run, the queue is empty
    // with the worker's connection closed (an unacked message would be ready).
    CHECK(stats.duplicates == 0);
    CHECK(handler->runs == kCount);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox") == kCount);
    CHECK(db.count("SELECT count(*) FROM test.effects") == kCount);
    CHECK(broker.ready("many") == 0);
    MESSAGE("acks sent for " << kCount << " deliveries: " << stats.acks_sent);
}

TEST_CASE("the worker refuses to start without its inbox table and says to run migrate") {
    test::Database db;
    test::Vhost vhost;
    idemq::Worker worker({.amqp_url = vhost.url(), .database_url = db.url(), .handle_signals = false});
    worker.add_handler({.handler = "nothing"}, std::make_unique<RecordingHandler>("nothing"));
    try {
        (void)worker.run();
        FAIL("expected run() to throw");
    } catch (const idemq::Error& e) {
        CHECK(std::string(e.what()).find("migrate") != std::string::npos);
    }
}

TEST_CASE_FIXTURE(Fixture, "heartbeats keep flowing while a handler runs longer than the broker's heartbeat timeout" *
                               test::concurrency) {
    struct Slow final : RecordingHandler {
        using RecordingHandler::RecordingHandler;
        void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
            std::this_thread::sleep_for(std::chrono::milliseconds(3'500));
            RecordingHandler::handle(message, tx, ctx);
        }
    };
    idemq::WorkerOptions slow_options = options();
    slow_options.heartbeat = std::chrono::seconds(1);
    test::RunningWorker worker(
        slow_options, [&](idemq::Worker& w) { w.add_handler({.handler = "slow"}, std::make_unique<Slow>("slow")); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("slow"); }));
    broker.publish_one("", "slow", {.body = "zzz", .message_id = "z-1"});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 1; }));
    const auto stats = worker.stop();
    CHECK(stats.broker_reconnects == 0);
    CHECK(stats.duplicates == 0);
    CHECK(broker.ready("slow") == 0);
}

TEST_CASE_FIXTURE(Fixture, "W3C trace context reaches the handler and stays on a dead-lettered copy") {
    struct Tracing final : idemq::Handler {
        void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
            tx.exec_params("INSERT INTO test.effects (handler, key, correlation_id, body) VALUES ('trace', $1, $2, $3)",
                           std::string(ctx.trace_parent()), std::string(ctx.trace_state()),
                           std::string(message.body()));
            if (message.body() == "fail") throw idemq::PermanentError("no");
        }
    };
    test::RunningWorker worker(
        options(), [&](idemq::Worker& w) { w.add_handler({.handler = "traced"}, std::make_unique<Tracing>()); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("traced"); }));
    const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    broker.publish(
        "", "traced",
        {{.body = "ok", .message_id = "tr-1", .headers = {{"traceparent", parent}, {"tracestate", "vendor=x"}}},
         {.body = "fail", .message_id = "tr-2", .headers = {{"traceparent", parent}}}});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 1 && broker.ready("traced.dlq") == 1; }));
    worker.stop();
    CHECK(db.scalar("SELECT key FROM test.effects WHERE body = 'ok'") == parent);
    CHECK(db.scalar("SELECT correlation_id FROM test.effects WHERE body = 'ok'") == "vendor=x");
    const auto dead = broker.peek_all("traced.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(test::header(dead[0], "traceparent") == parent);
}
