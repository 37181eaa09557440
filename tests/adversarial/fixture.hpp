#pragma once

// What the in-process adversarial tests share: a database with idemq's
// tables and a test.effects table, a vhost, and a handler base that records
// each effect byte for byte.

#include <idemq/errors.hpp>
#include <idemq/handler.hpp>
#include <idemq/migration.hpp>

#include <pqxx/binarystring>
#include <pqxx/transaction>

#include <string>

#include "support.hpp"

namespace test {

// Records an effect: test.effects(key, message_id, correlation_id, attempt),
// every id as bytea, so nothing about the bytes is lost or refused.
inline void record_effect(pqxx::transaction_base& tx, const idemq::Message& message, idemq::Context& ctx) {
    const auto bytes = [](std::string_view value) { return pqxx::binarystring(value.data(), value.size()); };
    tx.exec_params("INSERT INTO test.effects (key, message_id, correlation_id, attempt) VALUES ($1, $2, $3, $4)",
                   bytes(ctx.idempotency_key()), bytes(message.message_id()), bytes(message.correlation_id()),
                   ctx.attempt());
}

struct AdversarialFixture {
    Database db;
    Vhost vhost;

    AdversarialFixture() {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        pqxx::connection connection(db.url());
        pqxx::work tx(connection);
        tx.exec(
            "CREATE SCHEMA test; "
            "CREATE TABLE test.effects (key bytea, message_id bytea, correlation_id bytea, attempt int); "
            "CREATE TABLE test.once (id int PRIMARY KEY); INSERT INTO test.once VALUES (1)");
        tx.commit();
    }

    [[nodiscard]] idemq::WorkerOptions options() const {
        return {.amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .prefetch = 16};
    }

    [[nodiscard]] long long effects() const { return db.count("SELECT count(*) FROM test.effects"); }
};

}  // namespace test
