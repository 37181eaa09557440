#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>

namespace {

// Defines what it is given, or throws from prepare() when told to.
class Preparing final : public idemq::Handler {
public:
    Preparing(std::string name, std::string sql, bool fail = false)
        : name_(std::move(name)), sql_(std::move(sql)), fail_(fail) {}
    void prepare(idemq::Statements& statements) override {
        if (fail_) throw std::runtime_error("no SQL today");
        statements.add(name_, sql_);
    }
    void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {}

private:
    std::string name_;
    std::string sql_;
    bool fail_;
};

class PreparingBatch final : public idemq::BatchHandler {
public:
    void prepare(idemq::Statements& statements) override { statements.add("book", "SELECT 2"); }
    void handle_batch(std::span<const idemq::Message>, pqxx::transaction_base&, idemq::BatchContext&) override {}
};

std::string config_error(const std::function<void()>& action) {
    try {
        action();
    } catch (const idemq::ConfigError& e) {
        return e.what();
    }
    return "";
}

idemq::Route route(const std::string& handler) { return {.handler = handler, .queue = handler}; }

}  // namespace

TEST_CASE("Statements keeps each definition once, in the order added") {
    idemq::Statements statements;
    statements.add("book", "INSERT INTO t VALUES ($1)");
    statements.add("read", "SELECT 1");
    statements.add("book", "INSERT INTO t VALUES ($1)");
    REQUIRE(statements.definitions().size() == 2);
    CHECK(statements.definitions()[0].name == "book");
    CHECK(statements.definitions()[1].sql == "SELECT 1");
}

TEST_CASE("Statements refuses an empty name or SQL, a name of idemq's and one name with two SQL texts") {
    idemq::Statements statements;
    CHECK(config_error([&] { statements.add("", "SELECT 1"); }).find("name must not be empty") != std::string::npos);
    CHECK(config_error([&] { statements.add("book", ""); }).find("'book'") != std::string::npos);
    CHECK(config_error([&] { statements.add("book", " \n\t"); }).find("must not be empty") != std::string::npos);
    CHECK(config_error([&] { statements.add("idemq_claim", "SELECT 1"); }).find("idemq's own") != std::string::npos);
    statements.add("book", "SELECT 1");
    CHECK(config_error([&] { statements.add("book", "SELECT 2"); }).find("different SQL") != std::string::npos);
    CHECK(statements.definitions().size() == 1);
}

TEST_CASE("two handlers giving one statement name different SQL cannot both be registered, the same SQL can") {
    idemq::Worker worker({});
    worker.add_handler(route("billing"), std::make_unique<Preparing>("book", "SELECT 1"));
    worker.add_handler(route("audit"), std::make_unique<Preparing>("book", "SELECT 1"));
    const auto error =
        config_error([&] { worker.add_handler(route("shipping"), std::make_unique<Preparing>("book", "SELECT 3")); });
    CHECK(error.find("'billing'") != std::string::npos);
    CHECK(error.find("'shipping'") != std::string::npos);
    CHECK(error.find("'book'") != std::string::npos);
    // A batch handler's statements share the namespace.
    CHECK(config_error([&] {
              worker.add_batch_handler(route("batch"), std::make_unique<PreparingBatch>());
          }).find("'batch'") != std::string::npos);
    CHECK(worker.routes().size() == 2);
}

TEST_CASE("a handler whose prepare() throws, or defines a bad statement, is refused with its name") {
    idemq::Worker worker({});
    CHECK(config_error([&] {
              worker.add_handler(route("broken"), std::make_unique<Preparing>("x", "y", true));
          }).find("handler 'broken': prepare() failed: no SQL today") != std::string::npos);
    CHECK(config_error([&] {
              worker.add_handler(route("empty"), std::make_unique<Preparing>("", "SELECT 1"));
          }).find("handler 'empty'") != std::string::npos);
    CHECK(config_error([&] {
              worker.add_handler(route("reserved"), std::make_unique<Preparing>("idemq_claim", "SELECT 1"));
          }).find("handler 'reserved'") != std::string::npos);
    CHECK(worker.routes().empty());
}
