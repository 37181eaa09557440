// The outbox's staging side: what a handler (or other code) stages commits
// or rolls back with its transaction, byte for byte, with the ids the
// receiving inbox relies on.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include "amqp/properties.hpp"
#include "outbox/staging.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

// Stages one event per message; throws after staging when the body says so.
class StagingHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base&, idemq::Context& ctx) override {
        const std::string body(message.body());
        if (body == "too-long-key") {
            ctx.outbox().publish({.exchange = "events", .routing_key = std::string(300, 'k'), .body = "x"});
            return;
        }
        ctx.outbox().publish({.exchange = "events",
                              .routing_key = std::string("charged\0\xff", 9),
                              .body = std::string("{\"of\":\"") + body + std::string("\"}\0\xfe", 4),
                              .content_type = "application/json",
                              .ordering_key = std::string("acct\0A1", 7)});
        ctx.outbox().publish({.exchange = "events", .routing_key = "audited", .body = "second"});
        if (body == "fail") throw idemq::PermanentError("staged, then failed");
    }
};

struct OutboxFixture {
    test::Database db;
    test::Vhost vhost;
    std::unique_ptr<test::Broker> broker;
    std::unique_ptr<test::RunningWorker> worker;

    OutboxFixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        broker = std::make_unique<test::Broker>(vhost.url());
        worker = std::make_unique<test::RunningWorker>(
            idemq::WorkerOptions{.amqp_url = vhost.url(), .database_url = db.url()}, [](idemq::Worker& w) {
                w.add_handler({.handler = "stager", .queue = "stager"}, std::make_unique<StagingHandler>());
            });
        REQUIRE(test::eventually([&] { return broker->consumed("stager"); }));
    }
    long long rows(const std::string& where = "true") {
        return db.count("SELECT count(*) FROM idemq.outbox WHERE " + where);
    }
};

}  // namespace

TEST_CASE_FIXTURE(OutboxFixture, "what a handler stages commits with it, with derived ids, byte for byte") {
    broker->publish_one("", "stager",
                        {.body = "ok",
                         .message_id = "charge-1",
                         .correlation_id = "corr-9",
                         .headers = {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}});
    REQUIRE(test::eventually([&] { return rows() == 2; }));
    const auto stats = worker->stop();
    CHECK(stats.processed == 1);

    const std::string first = idemq::detail::derived_message_id("stager", "charge-1", 0);
    const std::string second = idemq::detail::derived_message_id("stager", "charge-1", 1);
    CHECK(first != second);
    CHECK(first.size() == 36);
    CHECK(first[14] == '8');  // a version-8 UUID
    CHECK(db.scalar("SELECT string_agg(convert_from(message_id, 'UTF8'), ',' ORDER BY id) FROM idemq.outbox") ==
          first + "," + second);
    // Bytes from the wire arrive unchanged, NULs and all.
    CHECK(db.scalar("SELECT encode(routing_key, 'hex') FROM idemq.outbox ORDER BY id LIMIT 1") == "6368617267656400ff");
    CHECK(db.scalar("SELECT encode(ordering_key, 'hex') FROM idemq.outbox ORDER BY id LIMIT 1") == "61636374004131");
    CHECK(db.scalar("SELECT encode(body, 'hex') FROM idemq.outbox ORDER BY id LIMIT 1").ends_with("7d00fe"));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox WHERE ordering_key IS NULL") == 1);
    CHECK(db.scalar("SELECT string_agg(staged_by, ',') FROM idemq.outbox") == "stager,stager");

    // The properties the relay will publish: the handled message's
    // correlation id and trace context, carried over.
    const auto properties = idemq::detail::OwnedProperties::from_json(
        nlohmann::json::parse(db.scalar("SELECT properties::text FROM idemq.outbox ORDER BY id LIMIT 1")));
    CHECK(properties.message_id() == first);
    CHECK(properties.correlation_id() == "corr-9");
    CHECK(properties.content_type() == "application/json");
    CHECK(properties.headers_as_text().at("traceparent") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
}

TEST_CASE_FIXTURE(OutboxFixture,
                  "a handler that stages and then fails stages nothing, and one that cannot be sent "
                  "is dead-lettered with the reason") {
    broker->publish("", "stager",
                    {{.body = "fail", .message_id = "f-1"}, {.body = "too-long-key", .message_id = "f-2"}});
    REQUIRE(test::eventually([&] { return broker->ready("stager.dlq") == 2; }));
    const auto stats = worker->stop();
    CHECK(stats.dead_lettered.at("permanent-error") == 2);
    CHECK(rows() == 0);
    std::string errors;
    for (const auto& dead : broker->peek_all("stager.dlq")) errors += test::header(dead, "x-idemq-error") + "\n";
    CHECK(errors.find("routing key is 300 bytes long; AMQP allows at most 255") != std::string::npos);
}

TEST_CASE("outbox::stage outside a handler commits and rolls back with its transaction") {
    test::Database db;
    idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
    pqxx::connection connection(db.url());
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "events", .routing_key = "web", .body = "rolled back"});
        tx.abort();
    }
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "events", .routing_key = "web", .body = "kept"});
        idemq::outbox::stage(
            tx, {.exchange = "events", .routing_key = "web", .body = "kept too", .message_id = "given-id"});
        tx.commit();
    }
    CHECK(db.count("SELECT count(*) FROM idemq.outbox") == 2);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox WHERE staged_by IS NULL") == 2);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox WHERE message_id = 'given-id'::bytea") == 1);
    // Without an id, a random UUID (version 4), stored in the row so that
    // every copy the relay sends carries it.
    CHECK(db.scalar("SELECT substr(convert_from(message_id, 'UTF8'), 15, 1) FROM idemq.outbox "
                    "WHERE body = 'kept'::bytea") == "4");
    pqxx::work tx(connection);
    CHECK_THROWS_AS(idemq::outbox::stage(tx, {.exchange = std::string(256, 'e'), .routing_key = "web"}),
                    idemq::PermanentError);
}
