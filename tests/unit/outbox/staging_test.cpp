#include <doctest/doctest.h>

#include <idemq/errors.hpp>
#include <idemq/testing.hpp>

#include "outbox/staging.hpp"

using idemq::OutgoingMessage;
using idemq::detail::completed;
using idemq::detail::derived_message_id;
using idemq::detail::StagedFrom;

TEST_CASE("a staged message's id is derived from handler, key and place, the same on every attempt") {
    CHECK(derived_message_id("payments", "charge-1", 0) == derived_message_id("payments", "charge-1", 0));
    CHECK(derived_message_id("payments", "charge-1", 0) != derived_message_id("payments", "charge-1", 1));
    CHECK(derived_message_id("payments", "charge-1", 0) != derived_message_id("payments", "charge-2", 0));
    CHECK(derived_message_id("payments", "charge-1", 0) != derived_message_id("payments2", "charge-1", 0));
    // No other split of the same bytes into handler and key derives alike.
    CHECK(derived_message_id("ab", "c", 0) != derived_message_id("a", "bc", 0));
    CHECK(derived_message_id("h", std::string("k\0", 2), 0) != derived_message_id("h", "k", 0));
}

TEST_CASE("a staged message inherits the handled message's correlation id and trace context unless it sets them") {
    const idemq::Message handled = idemq::testing::make_message(
        {.message_id = "m-1",
         .correlation_id = "c-1",
         .headers = {{"traceparent", "00-aa-bb-01"}, {"tracestate", "x=1"}, {"other", "not carried"}}});
    const StagedFrom from{.handler = "h", .idempotency_key = "m-1", .correlation_id = "c-1", .message = &handled};

    const OutgoingMessage inherited = completed({.exchange = "e", .routing_key = "k"}, &from, 2);
    CHECK(inherited.message_id == derived_message_id("h", "m-1", 2));
    CHECK(inherited.correlation_id == "c-1");
    CHECK(inherited.headers.at("traceparent") == "00-aa-bb-01");
    CHECK(inherited.headers.at("tracestate") == "x=1");
    CHECK_FALSE(inherited.headers.contains("other"));

    const OutgoingMessage own = completed(
        {.message_id = "mine", .correlation_id = "c-2", .headers = {{"traceparent", "00-cc-dd-01"}}}, &from, 0);
    CHECK(own.message_id == "mine");
    CHECK(own.correlation_id == "c-2");
    CHECK(own.headers.at("traceparent") == "00-cc-dd-01");

    // Outside a handler: a random id, nothing inherited.
    const OutgoingMessage alone = completed({}, nullptr, 0);
    CHECK(alone.message_id.size() == 36);
    CHECK(alone.message_id != completed({}, nullptr, 0).message_id);
    CHECK(alone.correlation_id.empty());
}

TEST_CASE("a message that AMQP cannot carry is refused when it is staged, as a permanent error") {
    CHECK_THROWS_AS((void)completed({.routing_key = std::string(256, 'k')}, nullptr, 0), idemq::PermanentError);
    CHECK_THROWS_AS((void)completed({.exchange = std::string(256, 'e')}, nullptr, 0), idemq::PermanentError);
    CHECK_THROWS_AS((void)completed({.message_id = std::string(256, 'm')}, nullptr, 0), idemq::PermanentError);
    CHECK_NOTHROW((void)completed({.routing_key = std::string(255, 'k')}, nullptr, 0));
}

TEST_CASE("FakeContext keeps what a handler staged, for the handler's own unit tests") {
    const idemq::Message message = idemq::testing::make_message({.body = "{}"});
    idemq::testing::FakeContext ctx(message);
    ctx.outbox().publish({.exchange = "payments.events", .routing_key = "charged", .body = "{}"});
    REQUIRE(ctx.staged.messages.size() == 1);
    CHECK(ctx.staged.messages[0].routing_key == "charged");
}
