// Retries, delay tiers and the crash-loop guard, against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/transaction>

#include <csignal>
#include <mutex>

#include "charge_handler.hpp"
#include "payments_schema.hpp"
#include "payments_worker.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Fails every time, remembering when each attempt ran.
class AlwaysFailing final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base&, idemq::Context& ctx) override {
        std::lock_guard lock(mutex_);
        runs_[std::string(message.message_id())].push_back({ctx.attempt(), Clock::now()});
        throw std::runtime_error("the downstream service is down");
    }
    struct Run {
        int attempt;
        Clock::time_point at;
    };
    std::vector<Run> runs(const std::string& id) {
        std::lock_guard lock(mutex_);
        return runs_[id];
    }

private:
    std::mutex mutex_;
    std::map<std::string, std::vector<Run>> runs_;
};

}  // namespace

TEST_CASE("a handler that fails transiently twice succeeds on attempt 3 and books once") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", test::payments_schema());
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [](idemq::Worker& w) {
        w.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
    broker.publish("payments", "charge",
                   {{.body = test::charge("flaky-1", 700), .message_id = "f-1"},
                    {.body = test::charge("steady", 300), .message_id = "s-1"}});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 2; }));
    const auto stats = worker.stop();
    CHECK(stats.immediate_retries == 2);
    CHECK(stats.delayed_retries == 0);
    CHECK(stats.dead_lettered.empty());
    CHECK(db.count("SELECT count(*) FROM payments.ledger WHERE message_id = 'f-1'") == 1);
    CHECK(db.count("SELECT balance_cents FROM payments.balances WHERE account = 'flaky-1'") == 700);
}

TEST_CASE("an always-failing message gets exactly max attempts, with bounded growing delays, then the DLQ" *
          test::concurrency) {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    auto* handler = new AlwaysFailing();
    idemq::RetryPolicy policy{.immediate_retries = 1,
                              .immediate_backoff = milliseconds(50),
                              .delayed_retries = 3,
                              .delayed_base = milliseconds(400),
                              .delayed_cap = milliseconds(1'000)};
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [&](idemq::Worker& w) {
        w.add_handler({.handler = "doomed", .retry = policy}, std::unique_ptr<idemq::Handler>(handler));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("doomed"); }));
    broker.publish_one("", "doomed", {.body = "x", .message_id = "d-1", .headers = {{"tenant", "acme"}}});

    REQUIRE(test::eventually([&] { return broker.ready("doomed.dlq") == 1; }));
    const auto runs = handler->runs("d-1");
    REQUIRE(runs.size() == 5);
    for (std::size_t i = 0; i < runs.size(); ++i) CHECK(runs[i].attempt == static_cast<int>(i) + 1);
    // Attempt 2 is immediate; attempts 3..5 wait in delay tiers for at most
    // min(cap, base * 2^(n-1)), rounded up to the 250 ms tier, plus transit.
    const auto gap = [&](std::size_t i) {
        return std::chrono::duration_cast<milliseconds>(runs[i].at - runs[i - 1].at);
    };
    CHECK(gap(1) < milliseconds(1'000));
    const milliseconds ceilings[] = {milliseconds(400), milliseconds(800), milliseconds(1'000)};
    for (std::size_t n = 0; n < 3; ++n) {
        INFO("delayed retry " << n + 1 << " took " << gap(n + 2).count() << " ms");
        CHECK(gap(n + 2) <= std::max(ceilings[n], milliseconds(250)) + milliseconds(1'500));
    }

    const auto dead = broker.peek_all("doomed.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(test::header(dead[0], "x-idemq-reason") == "retries-exhausted");
    CHECK(test::header(dead[0], "x-idemq-attempts") == "5");
    CHECK(test::header(dead[0], "x-idemq-error") == "the downstream service is down");
    CHECK(test::header(dead[0], "x-idemq-error-type") == "std::runtime_error");
    CHECK(test::header(dead[0], "tenant") == "acme");
    const std::string first = test::header(dead[0], "x-idemq-first-failure-at");
    const std::string last = test::header(dead[0], "x-idemq-last-failure-at");
    CHECK(first.size() == 24);
    CHECK(last.size() == 24);
    CHECK(first < last);
    const auto stats = worker.stop();
    CHECK(stats.immediate_retries == 1);
    CHECK(stats.delayed_retries == 3);
    CHECK(stats.dead_lettered.at("retries-exhausted") == 1);
    CHECK(broker.ready("doomed") == 0);
}

TEST_CASE("a short retry delay is not held up behind a long one") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    auto* slow = new AlwaysFailing();
    auto* quick = new AlwaysFailing();
    const idemq::RetryPolicy hour{.immediate_retries = 0,
                                  .delayed_retries = 1,
                                  .delayed_base = std::chrono::hours(1),
                                  .delayed_cap = std::chrono::hours(1),
                                  .jitter = false};
    const idemq::RetryPolicy second{.immediate_retries = 0,
                                    .delayed_retries = 1,
                                    .delayed_base = milliseconds(1'000),
                                    .delayed_cap = milliseconds(1'000),
                                    .jitter = false};
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [&](idemq::Worker& w) {
        w.add_handler({.handler = "slow", .retry = hour}, std::unique_ptr<idemq::Handler>(slow));
        w.add_handler({.handler = "quick", .retry = second}, std::unique_ptr<idemq::Handler>(quick));
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("slow") && broker.consumed("quick"); }));
    broker.publish_one("", "slow", {.body = "1", .message_id = "long"});
    REQUIRE(test::eventually([&] { return worker.stats().delayed_retries == 1; }));
    const auto published = Clock::now();
    broker.publish_one("", "quick", {.body = "2", .message_id = "short"});

    REQUIRE(test::eventually([&] { return quick->runs("short").size() == 2; }, std::chrono::seconds(10)));
    const auto waited = std::chrono::duration_cast<milliseconds>(quick->runs("short")[1].at - published);
    INFO("the 1 s retry came back after " << waited.count() << " ms");
    CHECK(waited < milliseconds(4'000));
    CHECK(slow->runs("long").size() == 1);
    // The long one is still parked in its delay tier.
    CHECK(broker.ready("idemq.delay.2048000ms") == 1);
    worker.stop();
}

TEST_CASE("a message that kills the worker on every delivery ends in the DLQ as a crash loop") {
    test::PaymentsWorker payments({.env = {{"IDEMQ_TEST_ABORT_IN_HANDLER", "poison"}}, .start = false});
    const test::Database& db = payments.db();
    test::Broker& broker = payments.broker();

    std::vector<test::Outgoing> messages;
    for (int i = 0; i < 20; ++i)
        messages.push_back(
            {.body = test::charge("A" + std::to_string(i % 3), 10), .message_id = "ok-" + std::to_string(i)});
    messages.insert(messages.begin() + 5, test::Outgoing{.body = test::charge("A0", 999), .message_id = "poison"});

    const int deaths = payments.supervise(messages, [&] {
        return broker.ready("payments.charge.dlq") == 1 && db.count("SELECT count(*) FROM payments.ledger") == 20;
    });
    // The first delivery is not marked (a mark costs a transaction), so its
    // death is not counted: 5 counted deaths (the default limit) after it.
    CHECK(deaths == 6);
    const auto dead = broker.peek_all("payments.charge.dlq");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].properties.message_id() == "poison");
    CHECK(test::header(dead[0], "x-idemq-reason") == "crash-loop");
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 20);
    CHECK(db.count("SELECT count(*) FROM payments.ledger WHERE message_id = 'poison'") == 0);
    CHECK(db.count("SELECT count(*) FROM idemq.handling_started") == 0);
    CHECK(broker.ready("payments.charge") == 0);
}
