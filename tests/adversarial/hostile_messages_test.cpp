// Hostile messages against a real worker: whatever a publisher puts in a
// message's properties, headers or body, the message ends up processed or in
// the DLQ with a clear reason, and the worker keeps consuming.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <amqp.h>
#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../integration/running_worker.hpp"
#include "../integration/support.hpp"
#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"
#include "amqp/dead_letter.hpp"
#include "amqp/properties.hpp"
#include "amqp/value.hpp"
#include "testing/table_builder.hpp"

using idemq::detail::OwnedProperties;

namespace {

using namespace std::chrono_literals;

// Bodies choose the handler's behaviour: "fail..." is refused for good,
// "transient..." always fails with a transient error, "flaky..." fails only
// on its first attempt. Everything else is recorded in test.effects.
class Recorder final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        const std::string_view body = message.body();
        if (body.starts_with("fail")) throw idemq::PermanentError("refused on purpose");
        if (body.starts_with("transient")) throw idemq::TransientError("always failing");
        if (body.starts_with("flaky") && message.attempt() == 1) throw idemq::TransientError("failing once");
        tx.exec_params(
            "INSERT INTO test.effects (key, body, attempt, exchange, routing_key) VALUES ($1, $2, $3, $4, $5)",
            std::string(ctx.idempotency_key()), pqxx::binarystring(std::string(body)), message.attempt(),
            std::string(message.exchange()), std::string(message.routing_key()));
    }
};

using idemq::detail::TableBuilder;
constexpr auto scalar = [](std::uint8_t kind, auto set) { return TableBuilder::scalar(kind, set); };

const std::string kBinary("\xff\xfe\x00\xc3\x28 binary", 12);

struct Fixture {
    test::Database db;
    test::Vhost vhost;
    std::unique_ptr<test::RunningWorker> worker;
    std::unique_ptr<test::Broker> broker;
    static constexpr int kMaxAttempts = 2;

    Fixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec(
            "CREATE SCHEMA test; CREATE TABLE test.effects (key text, body bytea, attempt int, exchange text, "
            "routing_key text)");
        tx.commit();
        // One delayed retry, quickly: the delay tier is part of every case.
        const idemq::RetryPolicy retry{.immediate_retries = 0,
                                       .immediate_backoff = 10ms,
                                       .delayed_retries = 1,
                                       .delayed_base = 300ms,
                                       .delayed_cap = 1000ms};
        worker = std::make_unique<test::RunningWorker>(
            idemq::WorkerOptions{.amqp_url = vhost.url(),
                                 .database_url = db.url(),
                                 .concurrency = 2,
                                 .prefetch = 16,
                                 .max_body_bytes = 64 * 1024},
            [&](idemq::Worker& w) {
                w.add_handler({.handler = "orders", .exchange = "shop", .routing_keys = {"order"}, .retry = retry},
                              std::make_unique<Recorder>());
            });
        broker = std::make_unique<test::Broker>(vhost.url());
        REQUIRE(test::eventually([&] { return broker->consumed("orders"); }));
    }

    void publish(const OwnedProperties& properties, const std::string& body) {
        broker->publish_raw("shop", "order", properties, body);
    }
    long long effects(const std::string& key) {
        return db.count("SELECT count(*) FROM test.effects WHERE key = '" + key + "'");
    }
    // The DLQ copy of `message_id`, once it is there.
    idemq::detail::Delivery dead_letter(const std::string& message_id) {
        std::optional<idemq::detail::Delivery> found;
        REQUIRE_MESSAGE(test::eventually([&] {
                            for (auto& delivery : broker->peek_all("orders.dlq")) {
                                if (delivery.properties.message_id() == message_id) {
                                    found = std::move(delivery);
                                    return true;
                                }
                            }
                            return false;
                        }),
                        message_id << " never reached the DLQ");
        return std::move(*found);
    }
    // A plain message published now is processed: the worker is still consuming.
    void still_consuming() {
        const std::string id = test::unique_name("after");
        test::Outgoing plain{.body = "plain", .message_id = id};
        broker->publish_one("shop", "order", plain);
        CHECK_MESSAGE(test::eventually([&] { return effects(id) == 1; }), "the worker stopped consuming");
    }
    // idemqctl dlq <args> against this vhost.
    std::pair<int, std::string> dlq(std::vector<std::string> args) const {
        args.insert(args.begin(), "dlq");
        test::Process process(test::bin("idemqctl"), args, {{"IDEMQ_AMQP_URL", vhost.url()}});
        const int code = process.wait(std::chrono::seconds(120));
        return {code, process.output()};
    }
};

}  // namespace

TEST_CASE("non-UTF-8 bytes at every depth of the headers: processed, dead-lettered and handled by the DLQ tools") {
    Fixture f;
    TableBuilder t;
    const std::vector<std::pair<std::string, std::vector<std::pair<std::string, amqp_field_value_t>>>> cases = {
        {"top-text", {{"h", t.text(kBinary)}}},
        {"top-bytes", {{"h", t.bytes(kBinary)}}},
        {"in-table", {{"h", t.table({{"inner", t.text(kBinary)}})}}},
        {"in-array", {{"h", t.array({t.text("ok"), t.text(kBinary), t.bytes(kBinary)})}}},
        {"binary-key",
         {{kBinary, t.text("v")}, {"h", t.table({{kBinary, t.array({t.table({{"k", t.text(kBinary)}})})}})}}},
    };
    for (const auto& [id, headers] : cases) f.publish(t.properties(id, headers), "ok");
    for (const auto& [id, headers] : cases) {
        CAPTURE(id);
        CHECK(test::eventually([&] { return f.effects(id) == 1; }));
    }

    // The same headers on a failing message: in the DLQ, readable by every tool.
    const auto nested = t.properties(
        "fail-nested", {{"h", t.table({{kBinary, t.array({t.text(kBinary)})}})}, {"top", t.text(kBinary)}});
    f.publish(nested, "fail\xff body");
    const auto dead = f.dead_letter("fail-nested");
    CHECK(test::header(dead, "x-idemq-reason") == "permanent-error");
    CHECK(test::header(dead, "top") == kBinary);
    f.still_consuming();

    const auto [list_code, list_output] = f.dlq({"list", "--queue", "orders", "--json"});
    CHECK_MESSAGE(list_code == 0, list_output);
    CHECK(list_output.find("permanent-error") != std::string::npos);
    const auto [table_code, table_output] = f.dlq({"list", "--queue", "orders"});
    CHECK_MESSAGE(table_code == 0, table_output);
    const auto [show_code, show_output] = f.dlq({"show", "--queue", "orders", "fail-nested"});
    CHECK_MESSAGE(show_code == 0, show_output);
    {
        test::Process trace(test::bin("idemqctl"), {"trace", "fail-nested", "--queue", "orders"},
                            {{"IDEMQ_AMQP_URL", f.vhost.url()}, {"IDEMQ_DATABASE_URL", f.db.url()}});
        const int code = trace.wait(std::chrono::seconds(120));
        CHECK_MESSAGE(code == 0, trace.output());
        CHECK(trace.output().find("dlq: in orders.dlq with reason permanent-error") != std::string::npos);
    }

    // Export and import are byte-exact: the imported copy carries the very same table.
    const std::string file = "/tmp/" + test::unique_name("hostile_export") + ".jsonl";
    const auto [export_code, export_output] = f.dlq({"export", "--queue", "orders", "--all", "--out", file});
    REQUIRE_MESSAGE(export_code == 0, export_output);
    f.broker->declare_queue("imported");
    const auto [import_code, import_output] = f.dlq({"import", file, "--to-queue", "imported"});
    REQUIRE_MESSAGE(import_code == 0, import_output);
    REQUIRE(test::eventually([&] { return f.broker->ready("imported") == 1; }));
    const auto imported = f.broker->peek_all("imported");
    REQUIRE(imported.size() == 1);
    CHECK(imported[0].body == "fail\xff body");
    CHECK(test::header(imported[0], "top") == kBinary);
    CHECK(imported[0].properties.headers_as_text().at("h") == nested.headers_as_text().at("h"));
    std::remove(file.c_str());

    const auto [purge_code, purge_output] = f.dlq({"purge", "--queue", "orders", "--all", "--yes"});
    CHECK_MESSAGE(purge_code == 0, purge_output);
    CHECK(test::eventually([&] { return f.broker->ready("orders.dlq") == 0; }));
}

TEST_CASE("every AMQP field type in the headers is processed, and kept exactly on the DLQ copy") {
    Fixture f;
    TableBuilder t;
    std::vector<std::pair<std::string, amqp_field_value_t>> all = {
        {"bool", scalar(AMQP_FIELD_KIND_BOOLEAN, [](auto& v) { v.value.boolean = 1; })},
        {"i8", scalar(AMQP_FIELD_KIND_I8, [](auto& v) { v.value.i8 = -8; })},
        {"u8", scalar(AMQP_FIELD_KIND_U8, [](auto& v) { v.value.u8 = 250; })},
        {"i16", scalar(AMQP_FIELD_KIND_I16, [](auto& v) { v.value.i16 = -1600; })},
        {"i32", scalar(AMQP_FIELD_KIND_I32, [](auto& v) { v.value.i32 = -320000; })},
        {"i64", scalar(AMQP_FIELD_KIND_I64, [](auto& v) { v.value.i64 = INT64_MIN; })},
        {"f32", scalar(AMQP_FIELD_KIND_F32, [](auto& v) { v.value.f32 = 1.5F; })},
        {"f64", scalar(AMQP_FIELD_KIND_F64, [](auto& v) { v.value.f64 = -2.25; })},
        {"decimal",
         scalar(AMQP_FIELD_KIND_DECIMAL, [](auto& v) { v.value.decimal = {.decimals = 2, .value = 12345}; })},
        {"timestamp", scalar(AMQP_FIELD_KIND_TIMESTAMP, [](auto& v) { v.value.u64 = 1'700'000'000; })},
        {"void", scalar(AMQP_FIELD_KIND_VOID, [](auto&) {})},
        {"bytes", t.bytes(kBinary)},
        {"nested", t.array({t.array({t.array({t.bytes(kBinary), t.table({{"d", t.table({})}})})}), t.array({})})},
    };
    f.publish(t.properties("all-kinds", all), "ok");
    CHECK(test::eventually([&] { return f.effects("all-kinds") == 1; }));

    f.publish(t.properties("fail-all-kinds", all), "fail");
    const auto dead = f.dead_letter("fail-all-kinds");
    CHECK(test::header(dead, "x-idemq-reason") == "permanent-error");
    CHECK(test::header(dead, "decimal") == "123.45");
    CHECK(test::header(dead, "timestamp") == "1700000000");
    CHECK(test::header(dead, "bytes") == kBinary);
    CHECK(dead.properties.to_json()["headers"]["nested"] == t.properties("x", all).to_json()["headers"]["nested"]);
    f.still_consuming();
}

TEST_CASE("headers close to frame_max: the DLQ and retry copies are bounded, the connection stays up") {
    Fixture f;
    TableBuilder t;
    // Together just under what one 128 KiB frame holds: any header added to
    // an unbounded copy would not fit.
    const auto near_frame_max = [&](const std::string& id) {
        return t.properties(id, {{"pad-large", t.text(std::string(72'000, 'L'))},
                                 {"pad-medium", t.text(std::string(58'800, 'M'))},
                                 {"keep", t.text("small")}});
    };
    REQUIRE(near_frame_max("probe").encoded_size().value() > idemq::detail::kDefaultRepublishBudget);

    f.publish(near_frame_max("big-ok"), "ok");
    f.publish(near_frame_max("big-fail"), "fail");
    f.publish(near_frame_max("big-flaky"), "flaky");

    const auto dead = f.dead_letter("big-fail");
    CHECK(test::header(dead, "x-idemq-reason") == "permanent-error");
    CHECK(test::header(dead, "keep") == "small");
    CHECK(test::header(dead, "pad-large").empty());
    CHECK(test::header(dead, std::string(idemq::detail::header::kDroppedHeaders)) == "pad-large");
    // The retried one went through a delay tier, bounded the same way, and succeeded on attempt 2.
    CHECK(test::eventually([&] { return f.effects("big-flaky") == 1; }));
    CHECK(f.db.scalar("SELECT attempt FROM test.effects WHERE key = 'big-flaky'") == "2");
    CHECK(test::eventually([&] { return f.effects("big-ok") == 1; }));
    f.still_consuming();
    CHECK(f.broker->ready("orders.dlq") == 1);
}

TEST_CASE("empty bodies are processed and oversized bodies are dead-lettered whole") {
    Fixture f;
    TableBuilder t;
    f.publish(t.properties("empty", {}), "");
    CHECK(test::eventually([&] { return f.effects("empty") == 1; }));
    CHECK(f.db.scalar("SELECT length(body) FROM test.effects WHERE key = 'empty'") == "0");

    const std::string huge(200'000, 'x');
    f.publish(t.properties("huge", {}), huge);
    const auto dead = f.dead_letter("huge");
    CHECK(test::header(dead, "x-idemq-reason") == "message-too-large");
    CHECK(dead.body == huge);
    f.still_consuming();
}

TEST_CASE("spoofed x-idemq headers cannot make a message retry forever, wait forever or lie about its origin") {
    Fixture f;
    TableBuilder t;
    const auto i64 = [](std::int64_t n) { return scalar(AMQP_FIELD_KIND_I64, [n](auto& v) { v.value.i64 = n; }); };
    const auto u64 = [](std::uint64_t n) { return scalar(AMQP_FIELD_KIND_U64, [n](auto& v) { v.value.u64 = n; }); };
    const std::int64_t now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();

    f.publish(t.properties("attempt-huge", {{"x-idemq-attempt", i64(INT64_MAX)}}), "ok");
    f.publish(t.properties("attempt-negative", {{"x-idemq-attempt", i64(-5)}}), "ok");
    f.publish(t.properties("attempt-text", {{"x-idemq-attempt", t.text("99")}}), "ok");
    f.publish(t.properties("attempt-u64", {{"x-idemq-attempt", u64(UINT64_MAX)}}), "ok");
    f.publish(t.properties("not-before-far", {{"x-idemq-not-before", i64(now_ms + 10LL * 24 * 3600 * 1000)}}), "ok");
    f.publish(t.properties("not-before-min", {{"x-idemq-not-before", i64(INT64_MIN)}}), "ok");
    f.publish(t.properties("spoofed-origin", {{"x-idemq-original-exchange", t.text("evil")},
                                              {"x-idemq-original-routing-key", t.text("elsewhere")}}),
              "ok");
    f.publish(t.properties("flaky-origin", {}), "flaky");
    for (const char* id : {"attempt-huge", "attempt-negative", "attempt-text", "attempt-u64", "not-before-far",
                           "not-before-min", "spoofed-origin"}) {
        CAPTURE(id);
        CHECK(test::eventually([&] { return f.effects(id) == 1; }, 15s));
    }
    CHECK(f.db.scalar("SELECT attempt FROM test.effects WHERE key = 'attempt-huge'") ==
          std::to_string(Fixture::kMaxAttempts));
    CHECK(f.db.scalar("SELECT attempt FROM test.effects WHERE key = 'attempt-negative'") == "1");
    CHECK(f.db.scalar("SELECT attempt FROM test.effects WHERE key = 'attempt-text'") == "1");
    CHECK(f.db.scalar("SELECT exchange FROM test.effects WHERE key = 'spoofed-origin'") == "shop");
    CHECK(f.db.scalar("SELECT routing_key FROM test.effects WHERE key = 'spoofed-origin'") == "order");
    // A retry comes back through the default exchange: its handler still sees the original exchange.
    CHECK(test::eventually([&] { return f.effects("flaky-origin") == 1; }));
    CHECK(f.db.scalar("SELECT exchange || '/' || routing_key FROM test.effects WHERE key = 'flaky-origin'") ==
          "shop/order");

    // A huge attempt on a failing message is its last attempt, not a wrap-around to forever.
    f.publish(t.properties("transient-huge", {{"x-idemq-attempt", i64(INT64_MAX)}}), "transient");
    const auto exhausted = f.dead_letter("transient-huge");
    CHECK(test::header(exhausted, "x-idemq-reason") == "retries-exhausted");
    f.publish(t.properties("fail-spoofed",
                           {{"x-idemq-original-exchange", t.text("evil")}, {"x-idemq-reason", t.text("not-mine")}}),
              "fail");
    const auto spoofed = f.dead_letter("fail-spoofed");
    CHECK(test::header(spoofed, "x-idemq-original-exchange") == "shop");
    CHECK(test::header(spoofed, "x-idemq-reason") == "permanent-error");
    f.still_consuming();
}

TEST_CASE("CC and BCC routing headers: a failing or retried message leaves exactly one copy, in one queue") {
    Fixture f;
    TableBuilder t;
    f.broker->declare_queue("bystander-cc");
    f.broker->declare_queue("bystander-bcc");
    const auto routed = [&](const std::string& id) {
        return t.properties(id, {{"CC", t.array({t.text("bystander-cc"), t.text("orders")})},
                                 {"BCC", t.array({t.text("bystander-bcc")})}});
    };
    // Through the "shop" exchange the CC keys match no binding, so only
    // orders gets the original. A copy idemq publishes through the default
    // exchange (the DLQ, a delay tier's dead-lettering) would reach every
    // queue a CC key names, orders itself included, if it kept the header.
    f.publish(routed("fail-cc"), "fail");
    f.publish(routed("flaky-cc"), "flaky");
    const auto dead = f.dead_letter("fail-cc");
    CHECK(test::header(dead, "CC").empty());
    CHECK(test::header(dead, std::string(idemq::detail::header::kOriginalCc)) == R"(["bystander-cc","orders"])");
    CHECK(test::eventually([&] { return f.effects("flaky-cc") == 1; }));
    f.still_consuming();
    // Let anything still in flight land before counting.
    std::this_thread::sleep_for(1500ms);
    CHECK(f.broker->ready("orders.dlq") == 1);
    CHECK(f.broker->ready("bystander-cc") == 0);
    CHECK(f.broker->ready("bystander-bcc") == 0);
    CHECK(f.effects("flaky-cc") == 1);
    CHECK(f.broker->ready("orders") == 0);
}

TEST_CASE("a publish whose headers cannot fit in a frame fails alone and the connection keeps publishing") {
    test::Vhost vhost;
    test::Broker broker(vhost.url());
    broker.declare_queue("target");
    idemq::detail::BlockingPublisher publisher({.url = vhost.url(), .connection_name = "idemq test oversized publish"});
    TableBuilder t;
    auto too_big = t.properties("too-big", {{"pad", t.text(std::string(200'000, 'p'))}});
    std::optional<std::string> first_error;
    bool first_done = false;
    publisher.publish("", "target", std::move(too_big), std::string("body"), [&](std::optional<std::string> error) {
        first_done = true;
        first_error = std::move(error);
    });
    // Refused before anything was written: at once, and with a reason.
    CHECK(first_done);
    REQUIRE(first_error.has_value());
    CHECK(first_error->find("frame_max") != std::string::npos);

    bool second_confirmed = false;
    publisher.publish("", "target", t.properties("fits", {{"small", t.text("s")}}), std::string("body"),
                      [&](std::optional<std::string> error) { second_confirmed = !error; });
    publisher.wait_all();
    CHECK(second_confirmed);
    CHECK(test::eventually([&] { return broker.ready("target") == 1; }));
}
