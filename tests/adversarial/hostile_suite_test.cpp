// The hostile suite of idemq/testing.hpp, as a user runs it against their own
// handler: here the payments example's, then handlers with known faults to
// show the suite finds them.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>
#include <idemq/testing.hpp>

#include <atomic>
#include <map>
#include <string>

#include "charge_handler.hpp"
#include "support.hpp"

namespace {

using idemq::testing::Ending;

idemq::Message::Fields charge_example(std::string_view unique) {
    return {.body = test::charge("A1", 100), .message_id = std::string(unique), .content_type = "application/json"};
}

struct PaymentsSetup {
    test::Database db;
    test::Vhost vhost;
    PaymentsSetup() { test::migrate_payments(db); }

    [[nodiscard]] idemq::testing::SuiteOptions options() const {
        // A small body limit keeps the oversized case quick.
        return {.worker = {
                    .amqp_url = vhost.url(), .database_url = db.url(), .concurrency = 2, .max_body_bytes = 256 * 1024}};
    }
};

// Where each case ends for the payments handler, first delivery and again.
// It parses the body as JSON and refuses what is not a charge for good; it
// writes the message id into a text column, which Postgres refuses for
// bytes that are not UTF-8.
const std::map<std::string, std::pair<Ending, std::string>>& expected_for_payments() {
    static const std::map<std::string, std::pair<Ending, std::string>> expected = {
        {"baseline", {Ending::kProcessed, ""}},
        {"message-id-nul", {Ending::kProcessed, ""}},
        {"message-id-invalid-utf8", {Ending::kDeadLettered, "permanent-error"}},
        {"message-id-absent", {Ending::kDeadLettered, "missing-idempotency-key"}},
        {"message-id-max-length", {Ending::kProcessed, ""}},
        {"correlation-id-binary", {Ending::kProcessed, ""}},
        {"header-invalid-utf8", {Ending::kProcessed, ""}},
        {"header-nested-binary", {Ending::kProcessed, ""}},
        {"header-every-field-type", {Ending::kProcessed, ""}},
        {"header-deep-nesting", {Ending::kProcessed, ""}},
        {"headers-near-frame-max", {Ending::kProcessed, ""}},
        {"headers-spoofed-idemq", {Ending::kProcessed, ""}},
        {"properties-unusual", {Ending::kProcessed, ""}},
        {"body-empty", {Ending::kDeadLettered, "permanent-error"}},
        {"body-binary", {Ending::kDeadLettered, "permanent-error"}},
        {"body-truncated", {Ending::kDeadLettered, "permanent-error"}},
        {"body-nul-inside", {Ending::kDeadLettered, "permanent-error"}},
        {"body-invalid-utf8", {Ending::kDeadLettered, "permanent-error"}},
        {"body-deeply-nested-json", {Ending::kDeadLettered, "permanent-error"}},
        {"body-oversized", {Ending::kDeadLettered, "message-too-large"}},
        {"routing-headers-on-bad-input", {Ending::kDeadLettered, "permanent-error"}},
        {"routing-headers-on-example", {Ending::kProcessed, ""}},
    };
    return expected;
}

void check_payments_report(const idemq::testing::Report& report) {
    INFO(report.to_string());
    CHECK(report.violations.empty());
    CHECK(report.warnings.empty());
    CHECK(report.broker_reconnects == 0);
    REQUIRE(report.cases.size() == idemq::testing::hostile_case_names().size());
    for (const auto& result : report.cases) {
        CAPTURE(result.name);
        const auto& [ending, reason] = expected_for_payments().at(result.name);
        CHECK(result.first == ending);
        CHECK(result.first_reason == reason);
        // Once processed, the same bytes are a duplicate; a dead letter is dead-lettered again.
        CHECK(result.second == (ending == Ending::kProcessed ? Ending::kDuplicate : ending));
        CHECK(result.second_reason == reason);
        if (ending == Ending::kDeadLettered) CHECK(!result.first_error.empty());
    }
}

}  // namespace

TEST_CASE(
    "the hostile suite runs every case against the payments handler: each ends where documented, none applied twice") {
    PaymentsSetup setup;
    const auto report = idemq::testing::run_hostile_suite(setup.options(), payments::charge_route(),
                                                          std::make_unique<payments::ChargeHandler>(), charge_example);
    check_payments_report(report);
    CHECK(report.at("body-truncated").first_error.find("not a JSON object") != std::string::npos);
    // The suite removes the dead letters it caused and leaves nothing in the work queue.
    test::Broker broker(setup.vhost.url());
    CHECK(broker.ready("payments.charge.dlq") == 0);
    CHECK(broker.ready("payments.charge") == 0);
    // Each processed case charged once, and so did the valid message after each case.
    long long processed_cases = 0;
    for (const auto& [name, ending] : expected_for_payments()) processed_cases += ending.first == Ending::kProcessed;
    CHECK(setup.db.count("SELECT count(*) FROM payments.ledger") ==
          processed_cases + static_cast<long long>(report.cases.size()));
}

TEST_CASE("the hostile suite runs against a batch handler with the same outcomes") {
    PaymentsSetup setup;
    const auto report = idemq::testing::run_hostile_suite(setup.options(), payments::charge_route(),
                                                          std::make_unique<payments::ChargeBatchHandler>(),
                                                          {.max_messages = 10}, charge_example);
    check_payments_report(report);
}

namespace {

// Two faults users make: a key that is not a function of the message (here a
// counter), and bad input reported as a transient failure.
class CarelessHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base&, idemq::Context&) override {
        if (!message.body().starts_with("{")) throw idemq::TransientError("could not parse the body");
    }
    [[nodiscard]] std::string idempotency_key(const idemq::Message& message) const override {
        return std::string(message.message_id()) + "#" + std::to_string(++calls_);
    }

private:
    mutable std::atomic<int> calls_{0};
};

}  // namespace

TEST_CASE("the hostile suite reports an unstable idempotency key as applied twice, and bad input taken for transient") {
    PaymentsSetup setup;
    auto options = setup.options();
    options.only = {"body-empty"};
    const auto report = idemq::testing::run_hostile_suite(options, {.handler = "careless"},
                                                          std::make_unique<CarelessHandler>(), charge_example);
    INFO(report.to_string());
    REQUIRE(report.cases.size() == 2);  // the baseline always runs
    CHECK(report.at("baseline").second == Ending::kProcessed);
    CHECK(report.at("body-empty").first_reason == "retries-exhausted");
    REQUIRE(report.violations.size() == 1);
    CHECK(report.violations[0].starts_with("baseline: applied twice"));
    REQUIRE(report.warnings.size() == 1);
    CHECK(report.warnings[0].starts_with("body-empty: ended as retries-exhausted"));
}

TEST_CASE("the hostile suite refuses a work queue that holds messages, and an example the handler refuses") {
    PaymentsSetup setup;
    {
        test::Broker broker(setup.vhost.url());
        broker.declare_queue("payments.charge");
        broker.publish_one("", "payments.charge", {.body = test::charge("A1", 1), .message_id = "left-over"});
    }
    CHECK_THROWS_WITH_AS(idemq::testing::run_hostile_suite(setup.options(), payments::charge_route(),
                                                           std::make_unique<payments::ChargeHandler>(), charge_example),
                         doctest::Contains("needs an empty work queue"), idemq::ConfigError);

    PaymentsSetup fresh;
    const auto refused = [](std::string_view unique) {
        return idemq::Message::Fields{.body = "not json", .message_id = std::string(unique)};
    };
    CHECK_THROWS_WITH_AS(idemq::testing::run_hostile_suite(fresh.options(), payments::charge_route(),
                                                           std::make_unique<payments::ChargeHandler>(), refused),
                         doctest::Contains("example message was not processed"), idemq::ConfigError);
}
