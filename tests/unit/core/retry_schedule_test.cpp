#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <pqxx/except>

#include <map>

#include "amqp/dead_letter.hpp"
#include "amqp/properties.hpp"
#include "amqp/topology.hpp"
#include "core/retry_schedule.hpp"
#include "inbox/process_delivery.hpp"

using namespace idemq::detail;
using std::chrono::milliseconds;

TEST_CASE("attempts go immediate, then delayed with growing ceilings, then to the DLQ") {
    std::mt19937_64 random(7);
    idemq::RetryPolicy policy;  // 2 immediate, 8 delayed, base 1 s, cap 1 h
    policy.jitter = false;
    CHECK(policy.max_attempts() == 11);
    CHECK(decide_retry(policy, 1, random).kind == RetryDecision::Kind::kImmediate);
    CHECK(decide_retry(policy, 2, random).kind == RetryDecision::Kind::kImmediate);
    CHECK(decide_retry(policy, 2, random).delay == milliseconds(200));
    const RetryDecision first_delayed = decide_retry(policy, 3, random);
    CHECK(first_delayed.kind == RetryDecision::Kind::kDelayed);
    CHECK(first_delayed.delay == milliseconds(1000));
    CHECK(decide_retry(policy, 4, random).delay == milliseconds(2000));
    CHECK(decide_retry(policy, 10, random).delay == milliseconds(128'000));
    CHECK(decide_retry(policy, 11, random).kind == RetryDecision::Kind::kDeadLetter);
}

TEST_CASE("a bad retry policy is refused naming the handler and the field") {
    idemq::RetryPolicy policy;
    policy.delayed_cap = std::chrono::hours(24 * 31);
    CHECK_THROWS_WITH_AS(policy.validate("h"), doctest::Contains("delayed_cap"), idemq::ConfigError);
    policy = {};
    policy.immediate_retries = -1;
    CHECK_THROWS_WITH_AS(policy.validate("orders"), doctest::Contains("orders"), idemq::ConfigError);
}

TEST_CASE("delay tiers double from 250 ms and a delay waits in the longest tier that fits") {
    const auto tiers = delay_tiers(milliseconds(3'600'000));
    CHECK(tiers.front() == milliseconds(250));
    CHECK(tiers.back() >= milliseconds(3'600'000));
    CHECK(tiers.size() == 15);
    CHECK(next_hop(milliseconds(0), tiers) == milliseconds(250));
    CHECK(next_hop(milliseconds(1000), tiers) == milliseconds(1000));
    CHECK(next_hop(milliseconds(1999), tiers) == milliseconds(1000));
    CHECK(next_hop(milliseconds(3'600'000), tiers) == milliseconds(2'048'000));
    CHECK(tier_name(milliseconds(4000)) == "idemq.delay.4000ms");
}

TEST_CASE("transient failures are told apart from the rest") {
    CHECK(is_transient(idemq::TransientError("later")));
    CHECK(is_transient(pqxx::serialization_failure("could not serialize access")));
    CHECK(is_transient(pqxx::deadlock_detected("deadlock detected")));
    CHECK(is_transient(pqxx::sql_error("x", "SELECT 1", "40001")));
    CHECK_FALSE(is_transient(pqxx::sql_error("x", "SELECT 1", "23505")));
    CHECK_FALSE(is_transient(std::runtime_error("bug")));
    CHECK_FALSE(is_transient(idemq::PermanentError("never")));
}

TEST_CASE("retry state survives the trip through headers") {
    const Failure failure{.reason = {}, .error = "timeout", .error_type = "idemq::TransientError"};
    const auto not_before = std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000));
    const OwnedProperties original =
        OwnedProperties::make("m-1", "c-1", "application/json", {{"tenant", std::string("a")}});
    const OwnedProperties retried =
        original.for_republish(retry_headers(failure,
                                             {.handler = "h",
                                              .original_exchange = "payments",
                                              .original_routing_key = "charge",
                                              .attempt = 3,
                                              .first_failure_at = "2023-11-14T22:13:20.000Z",
                                              .last_failure_at = "2023-11-14T22:13:21.000Z"},
                                             4, not_before));
    CHECK(retried.int_header(header::kAttempt) == 4);
    CHECK(retried.int_header(header::kNotBefore) == 1'700'000'000'000);
    const auto text = retried.headers_as_text();
    CHECK(text.at("tenant") == "a");
    CHECK(text.at(std::string(header::kFirstFailureAt)) == "2023-11-14T22:13:20.000Z");
    CHECK(text.at(std::string(header::kLastError)) == "timeout");
    CHECK(text.at(std::string(header::kOriginalExchange)) == "payments");
    CHECK(retried.message_id() == "m-1");
    CHECK(retried.get().delivery_mode == AMQP_DELIVERY_PERSISTENT);
}

TEST_CASE("a republished copy drops the per-message TTL and user id, keeping them as headers") {
    amqp_basic_properties_t source{};
    source._flags = AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_USER_ID_FLAG;
    source.expiration = amqp_cstring_bytes("60000");
    source.user_id = amqp_cstring_bytes("producer");
    const OwnedProperties copy = OwnedProperties(source).for_republish({});
    CHECK((copy.get()._flags & AMQP_BASIC_EXPIRATION_FLAG) == 0);
    CHECK((copy.get()._flags & AMQP_BASIC_USER_ID_FLAG) == 0);
    CHECK(copy.headers_as_text().at("x-idemq-original-expiration") == "60000");
    CHECK(copy.headers_as_text().at("x-idemq-original-user-id") == "producer");
}
