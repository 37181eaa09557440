// Message ids, correlation ids and keys are bytes from the wire: stored byte
// for byte, never truncated at a NUL, never refused for not being UTF-8.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include "charge_handler.hpp"
#include "fixture.hpp"
#include "running_worker.hpp"

namespace {

using namespace std::string_literals;

class Recorder final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        test::record_effect(tx, message, ctx);
    }
};

// Takes the key from the body: any bytes a key function may return.
class BodyKey final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        test::record_effect(tx, message, ctx);
    }
    [[nodiscard]] std::string idempotency_key(const idemq::Message& message) const override {
        return std::string(message.body());
    }
};

std::string hex_of(const test::Database& db, const std::string& sql) { return db.scalar(sql); }

}  // namespace

TEST_CASE_FIXTURE(test::AdversarialFixture,
                  "message ids that differ only after a NUL byte are two messages, each applied once") {
    test::RunningWorker worker(
        options(), [](idemq::Worker& w) { w.add_handler({.handler = "ids"}, std::make_unique<Recorder>()); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("ids"); }));
    const std::string a = "pay-\0a"s, b = "pay-\0b"s;
    broker.publish("", "ids",
                   {{.body = "1", .message_id = a}, {.body = "2", .message_id = b}, {.body = "1", .message_id = a}});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().duplicates == 3; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 2);
    CHECK(stats.duplicates == 1);
    CHECK(stats.dead_lettered.empty());
    CHECK(hex_of(db, "SELECT string_agg(encode(key, 'hex'), ',' ORDER BY key) FROM test.effects") ==
          "7061792d0061,7061792d0062");
    CHECK(hex_of(db,
                 "SELECT string_agg(encode(idempotency_key, 'hex'), ',' ORDER BY idempotency_key) FROM idemq.inbox") ==
          "7061792d0061,7061792d0062");
}

TEST_CASE_FIXTURE(test::AdversarialFixture,
                  "message and correlation ids that are not UTF-8 are processed once and stored as sent") {
    test::RunningWorker worker(
        options(), [](idemq::Worker& w) { w.add_handler({.handler = "ids"}, std::make_unique<Recorder>()); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("ids"); }));
    const test::Outgoing odd{.body = "x", .message_id = "\xff\xfe-1", .correlation_id = "\xc3\x28"};
    broker.publish("", "ids", {odd, odd});
    // The worker goes on with the next message.
    broker.publish_one("", "ids", {.body = "y", .message_id = "plain"});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().duplicates == 3; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 2);
    CHECK(stats.duplicates == 1);
    CHECK(stats.immediate_retries == 0);
    CHECK(stats.dead_lettered.empty());
    CHECK(hex_of(db,
                 "SELECT encode(message_id, 'hex') || '/' || encode(correlation_id, 'hex') FROM idemq.inbox "
                 "WHERE idempotency_key = '\\xfffe2d31'::bytea") == "fffe2d31/c328");
}

TEST_CASE_FIXTURE(test::AdversarialFixture,
                  "a key function may return any bytes, and a redelivery of it is a duplicate") {
    test::RunningWorker worker(
        options(), [](idemq::Worker& w) { w.add_handler({.handler = "keys"}, std::make_unique<BodyKey>()); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("keys"); }));
    const std::string binary = "\0\x01\xff\\'\""s;
    broker.publish("", "keys", {{.body = binary, .message_id = "k-1"}, {.body = binary, .message_id = "k-2"}});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().duplicates == 2; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 1);
    CHECK(stats.duplicates == 1);
    CHECK(hex_of(db, "SELECT encode(key, 'hex') FROM test.effects") == "0001ff5c2722");
}

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a handler writing a non-UTF-8 id into a text column dead-letters it at once as permanent, not retried") {
    idemq::apply_migrations(db.url(), "idemq", payments::migrations());
    test::RunningWorker worker(options(), [](idemq::Worker& w) {
        w.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
    });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("payments.charge"); }));
    broker.publish_one("payments", "charge", {.body = test::charge("A1", 10), .message_id = "\xff-odd"});
    broker.publish_one("payments", "charge", {.body = test::charge("A1", 5), .message_id = "fine"});
    REQUIRE(
        test::eventually([&] { return broker.ready("payments.charge.dlq") == 1 && worker.stats().processed == 1; }));
    const auto stats = worker.stop();
    CHECK(stats.dead_lettered.at("permanent-error") == 1);
    CHECK(stats.immediate_retries == 0);
    CHECK(stats.delayed_retries == 0);
    CHECK(db.count("SELECT balance_cents FROM payments.balances WHERE account = 'A1'") == 5);
}
