// The dead-letter tools (idemqctl dlq, <worker> dlq) against the real services.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>

#include "charge_handler.hpp"
#include "common/base64.hpp"
#include "payments_schema.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

// Fails while `broken`: PermanentError for bodies starting with "perm",
// otherwise a plain exception (retried, here not at all). Records each
// effect in test.effects.
class Toggle final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        if (broken.load()) {
            if (message.body().starts_with("perm")) throw idemq::PermanentError("bug #42");
            throw std::runtime_error("still broken");
        }
        tx.exec_params("INSERT INTO test.effects (key, body, tenant, replays) VALUES ($1, $2, $3, $4)",
                       std::string(ctx.idempotency_key()), pqxx::binarystring(std::string(message.body())),
                       std::string(message.header("tenant").value_or("")),
                       std::string(message.header("x-idemq-replay-count").value_or("0")));
    }
    std::atomic<bool> broken{true};
};

struct Fixture {
    test::Database db;
    test::Vhost vhost;
    Toggle* handler = new Toggle();
    std::unique_ptr<test::RunningWorker> worker;
    std::unique_ptr<test::Broker> broker;

    Fixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec("CREATE SCHEMA test; CREATE TABLE test.effects (key text, body bytea, tenant text, replays text)");
        tx.commit();
        const idemq::RetryPolicy no_retries{.immediate_retries = 0, .delayed_retries = 0};
        worker = std::make_unique<test::RunningWorker>(
            idemq::WorkerOptions{.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 64},
            [&](idemq::Worker& w) {
                w.add_handler({.handler = "orders", .exchange = "shop", .routing_keys = {"order"}, .retry = no_retries},
                              std::unique_ptr<idemq::Handler>(handler));
            });
        broker = std::make_unique<test::Broker>(vhost.url());
        REQUIRE(test::eventually([&] { return broker->consumed("orders"); }));
    }

    // Runs idemqctl with these arguments against the test's vhost.
    std::pair<int, std::string> ctl(std::vector<std::string> args) const {
        args.insert(args.begin(), "dlq");
        test::Process process(test::bin("idemqctl"), args, {{"IDEMQ_AMQP_URL", vhost.url()}});
        const int code = process.wait(std::chrono::seconds(120));
        return {code, process.output()};
    }
    std::uint32_t dead() { return broker->ready("orders.dlq"); }
    long long effects(const std::string& where = "true") {
        return db.count("SELECT count(*) FROM test.effects WHERE " + where);
    }
    void publish(std::vector<test::Outgoing> messages) { broker->publish("shop", "order", messages); }
};

std::vector<test::Outgoing> numbered(const std::string& prefix, int count, const std::string& body_prefix) {
    std::vector<test::Outgoing> out;
    for (int i = 1; i <= count; ++i) {
        out.push_back({.body = body_prefix + std::to_string(i),
                       .message_id = prefix + std::to_string(i),
                       .headers = {{"tenant", "t" + std::to_string(i % 3)}}});
    }
    return out;
}

}  // namespace

TEST_CASE("dlq list shows ten dead letters grouped by reason, and leaves all ten in place") {
    test::Database db;
    test::Vhost vhost;
    idemq::apply_migrations(db.url(), "idemq", test::payments_schema());
    test::RunningWorker worker({.amqp_url = vhost.url(), .database_url = db.url()}, [](idemq::Worker& w) {
        w.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
    std::vector<test::Outgoing> bad;
    for (int i = 0; i < 4; ++i) bad.push_back({.body = "{oops", .message_id = "json-" + std::to_string(i)});
    for (int i = 0; i < 3; ++i) bad.push_back({.body = R"({"account": "A", "amount_cents": 1})"});
    for (int i = 0; i < 2; ++i)
        bad.push_back({.body = R"({"account": "A", "amount_cents": -1})", .message_id = "neg-" + std::to_string(i)});
    broker.publish("payments", "charge", {{.body = R"({"account": "A", "amount_cents": 5})", .message_id = "k"}});
    REQUIRE(test::eventually([&] { return worker.stats().processed == 1; }));
    bad.push_back({.body = R"({"account": "A", "amount_cents": 6})", .message_id = "k"});
    broker.publish("payments", "charge", bad);
    REQUIRE(test::eventually([&] { return broker.ready("payments.charge.dlq") == 10; }));

    // The worker binary's own dlq command knows its handlers' queues.
    test::Process list(test::bin("payments-worker"), {"dlq", "list", "--handler", "payments.charge", "--json"},
                       {{"IDEMQ_AMQP_URL", vhost.url()}});
    REQUIRE_MESSAGE(list.wait() == 0, list.output());
    std::map<std::string, std::uint64_t> counts;
    std::size_t lines = 0;
    std::istringstream output(list.output());
    for (std::string line; std::getline(output, line);) {
        const auto json = nlohmann::json::parse(line);
        if (json.contains("summary")) {
            for (const auto& group : json["summary"]) {
                counts[group["reason"].get<std::string>() + "/" + group["error_type"].get<std::string>()] =
                    group["count"].get<std::uint64_t>();
            }
            CHECK(json["listed"] == 10);
        } else {
            ++lines;
        }
    }
    CHECK(lines == 10);
    CHECK(counts["permanent-error/idemq::PermanentError"] == 6);
    CHECK(counts["missing-idempotency-key/idemq"] == 3);
    CHECK(counts["idempotency-key-conflict/idemq"] == 1);
    CHECK(counts.size() == 3);
    CHECK(test::eventually([&] { return broker.ready("payments.charge.dlq") == 10; }));
}

TEST_CASE_FIXTURE(Fixture, "replay by reason, by message id and as a dry run moves exactly the selected messages") {
    publish(numbered("p-", 3, "perm"));
    publish(numbered("t-", 2, "transient"));
    REQUIRE(test::eventually([&] { return dead() == 5; }));

    auto [refused, why] = ctl({"replay", "--queue", "orders"});
    CHECK(refused == 2);
    CHECK(why.find("--all") != std::string::npos);

    handler->broken = false;  // the bug is fixed
    auto [dry_code, dry] = ctl({"replay", "--queue", "orders", "--all", "--dry-run"});
    CHECK(dry_code == 0);
    CHECK(dry.find("5 message(s) would be replayed") != std::string::npos);
    CHECK(test::eventually([&] { return dead() == 5; }));
    CHECK(effects() == 0);

    auto [code, out] = ctl({"replay", "--queue", "orders", "--reason", "retries-exhausted"});
    CHECK_MESSAGE(code == 0, out);
    CHECK(out.find("matched 2, replayed 2, left 3") != std::string::npos);
    REQUIRE(test::eventually([&] { return effects() == 2; }));
    CHECK(effects("key IN ('t-1', 't-2')") == 2);
    CHECK(test::eventually([&] { return dead() == 3; }));

    auto [code2, out2] = ctl({"replay", "--queue", "orders.dlq", "--message-id", "p-2"});
    CHECK_MESSAGE(code2 == 0, out2);
    REQUIRE(test::eventually([&] { return effects() == 3; }));
    CHECK(effects("key = 'p-2' AND replays = '1'") == 1);
    CHECK(test::eventually([&] { return dead() == 2; }));
    CHECK(worker->stats().processed == 3);
}

TEST_CASE_FIXTURE(Fixture, "replaying a message twice, or one already processed, has one effect") {
    publish(numbered("d-", 4, "perm"));
    REQUIRE(test::eventually([&] { return dead() == 4; }));
    const std::string file = "/tmp/" + test::unique_name("dlq_export") + ".jsonl";
    auto [exported, out] = ctl({"export", "--queue", "orders", "--out", file});
    REQUIRE_MESSAGE(exported == 0, out);
    handler->broken = false;
    REQUIRE(ctl({"replay", "--queue", "orders", "--all"}).first == 0);
    REQUIRE(test::eventually([&] { return effects() == 4; }));
    // The same messages again, twice: already processed, so duplicates.
    REQUIRE(ctl({"import", file}).first == 0);
    REQUIRE(ctl({"import", file}).first == 0);
    REQUIRE(test::eventually([&] { return worker->stats().duplicates == 8; }));
    CHECK(effects() == 4);
    CHECK(dead() == 0);
    std::remove(file.c_str());
}

TEST_CASE_FIXTURE(Fixture, "a replay killed midway and run again processes every message exactly once") {
    constexpr int kCount = 5000;
    publish(numbered("k-", kCount, "perm"));
    REQUIRE(test::eventually([&] { return dead() == kCount; }, std::chrono::seconds(120)));
    handler->broken = false;
    {
        test::Process replay(test::bin("idemqctl"), {"dlq", "replay", "--queue", "orders", "--all", "--rate", "1000"},
                             {{"IDEMQ_AMQP_URL", vhost.url()}});
        REQUIRE(test::eventually([&] { return effects() >= 1000; }, std::chrono::seconds(60)));
        replay.signal(SIGKILL);
        CHECK(replay.wait() == 128 + SIGKILL);
    }
    CHECK(effects() < kCount);
    auto [code, out] = ctl({"replay", "--queue", "orders", "--all"});
    CHECK_MESSAGE(code == 0, out);
    REQUIRE(test::eventually([&] { return effects() == kCount && broker->ready("orders") == 0; },
                             std::chrono::seconds(120)));
    CHECK(db.count("SELECT count(DISTINCT key) FROM test.effects") == kCount);
    CHECK(test::eventually([&] { return dead() == 0; }));
}

TEST_CASE_FIXTURE(Fixture, "export, purge and import round-trip bodies, ids and headers, processed once") {
    publish(numbered("e-", 5, "perm-body-"));
    REQUIRE(test::eventually([&] { return dead() == 5; }));
    const std::string file = "/tmp/" + test::unique_name("dlq_export") + ".jsonl";
    REQUIRE(ctl({"export", "--queue", "orders", "--all", "--out", file}).first == 0);
    CHECK(test::eventually([&] { return dead() == 5; }));
    auto [purged, out] = ctl({"purge", "--queue", "orders", "--all", "--yes"});
    CHECK_MESSAGE(purged == 0, out);
    CHECK(out.find("purged 5 message(s); 0 left") != std::string::npos);
    CHECK(test::eventually([&] { return dead() == 0; }));

    handler->broken = false;
    REQUIRE(ctl({"import", file}).first == 0);
    REQUIRE(test::eventually([&] { return effects() == 5; }));
    for (int i = 1; i <= 5; ++i) {
        const std::string key = "e-" + std::to_string(i);
        CHECK(db.scalar("SELECT convert_from(body, 'UTF8') FROM test.effects WHERE key = '" + key + "'") ==
              "perm-body-" + std::to_string(i));
        CHECK(db.scalar("SELECT tenant FROM test.effects WHERE key = '" + key + "'") == "t" + std::to_string(i % 3));
    }
    std::remove(file.c_str());
}

TEST_CASE_FIXTURE(Fixture, "a binary body survives show, export and import byte for byte") {
    std::string binary;
    for (int b = 0; b < 256; ++b) binary.push_back(static_cast<char>(b));
    publish({{.body = "perm" + binary, .message_id = "bin-1"}});
    REQUIRE(test::eventually([&] { return dead() == 1; }));

    auto [shown, out] = ctl({"show", "--queue", "orders", "bin-1"});
    REQUIRE_MESSAGE(shown == 0, out);
    const auto marker = out.find("--- body (base64) ---\n");
    REQUIRE(marker != std::string::npos);
    std::string encoded = out.substr(marker + 22);
    encoded = encoded.substr(0, encoded.find('\n'));
    CHECK(idemq::detail::base64_decode(encoded) == "perm" + binary);

    const std::string file = "/tmp/" + test::unique_name("dlq_export") + ".jsonl";
    REQUIRE(ctl({"export", "--queue", "orders", "--all", "--move", "--out", file}).first == 0);
    CHECK(test::eventually([&] { return dead() == 0; }));
    handler->broken = false;
    REQUIRE(ctl({"import", file}).first == 0);
    REQUIRE(test::eventually([&] { return effects() == 1; }));
    CHECK(db.scalar("SELECT encode(body, 'hex') FROM test.effects") ==
          db.scalar("SELECT encode(decode('" + idemq::detail::base64_encode("perm" + binary) + "', 'base64'), 'hex')"));
    std::remove(file.c_str());
}
