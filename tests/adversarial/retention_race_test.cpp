// A prune that removes a key between its claim and the read of its
// fingerprint: the key is new again, never a key conflict.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include "fixture.hpp"
#include "running_worker.hpp"

namespace {

class Recorder final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        test::record_effect(tx, message, ctx);
    }
};

}  // namespace

TEST_CASE_FIXTURE(
    test::AdversarialFixture,
    "a key pruned between its claim and the fingerprint read is claimed again, not dead-lettered as a conflict") {
    {
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        // An old row of the key, with another body's fingerprint, as a late
        // redelivery of a long-pruned message would meet it.
        tx.exec(
            "INSERT INTO idemq.inbox (handler, idempotency_key, body_sha256, message_id, correlation_id, received_at) "
            "VALUES ('late', 'late-1', sha256('old body'), 'late-1', '', now() - interval '20 days')");
        // A statement trigger fires even when ON CONFLICT inserted nothing:
        // it prunes right after the claim, inside the claiming transaction,
        // so the fingerprint read that follows finds no row.
        tx.exec(
            "CREATE FUNCTION test.prune_now() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "DELETE FROM idemq.inbox WHERE received_at < now() - interval '14 days'; RETURN NULL; END $$");
        tx.exec(
            "CREATE TRIGGER prune_after_claim AFTER INSERT ON idemq.inbox "
            "FOR EACH STATEMENT EXECUTE FUNCTION test.prune_now()");
        tx.commit();
    }
    test::RunningWorker worker(
        options(), [](idemq::Worker& w) { w.add_handler({.handler = "late"}, std::make_unique<Recorder>()); });
    test::Broker broker(vhost.url());
    REQUIRE(test::eventually([&] { return broker.consumed("late"); }));
    broker.publish_one("", "late", {.body = "new body", .message_id = "late-1"});
    REQUIRE(test::eventually([&] { return worker.stats().processed + worker.stats().dead_lettered.size() >= 1; }));
    const auto stats = worker.stop();
    CHECK(stats.processed == 1);
    CHECK(stats.dead_lettered.empty());
    CHECK(effects() == 1);
    CHECK(db.count("SELECT count(*) FROM idemq.inbox WHERE idempotency_key = 'late-1' "
                   "AND body_sha256 = sha256('new body')") == 1);
}
