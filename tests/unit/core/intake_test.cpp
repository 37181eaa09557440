#include <doctest/doctest.h>

#include "core/intake.hpp"

using idemq::detail::admit_delivery;
using idemq::detail::Delivery;
using idemq::detail::HeaderList;
using idemq::detail::OwnedProperties;
using std::chrono::milliseconds;

namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;
const std::vector<milliseconds> kTiers{milliseconds(250), milliseconds(1000), milliseconds(4000)};

idemq::Route route() {
    return {.handler = "orders",
            .queue = "orders",
            .retry = {.immediate_retries = 1, .delayed_retries = 2, .delayed_cap = milliseconds(10'000)}};
}

Delivery delivery(const HeaderList& headers, std::string body = "{}", std::string exchange = "shop") {
    return {.consumer_tag = "c",
            .delivery_tag = 1,
            .exchange = std::move(exchange),
            .routing_key = "order",
            .properties = OwnedProperties::make("m-1", "c-1", "application/json", headers),
            .body = std::move(body)};
}

}  // namespace

TEST_CASE("intake turns a delivery into the message its handler sees") {
    auto d = delivery({{"tenant", std::string("t-1")}}, "hello");
    const auto admission = admit_delivery(d, route(), kTiers, 1024, kNow);
    REQUIRE(admission.message);
    CHECK(!admission.refusal);
    CHECK(!admission.delay_again);
    CHECK(admission.message->body() == "hello");
    CHECK(admission.message->message_id() == "m-1");
    CHECK(admission.message->correlation_id() == "c-1");
    CHECK(admission.message->header("tenant") == "t-1");
    CHECK(admission.message->exchange() == "shop");
    CHECK(admission.message->attempt() == 1);
    CHECK(d.properties.message_id() == "m-1");  // the properties stay for a republished copy
}

TEST_CASE("intake keeps a crafted attempt count within what the route can reach") {
    auto huge = delivery({{"x-idemq-attempt", std::int64_t{99}}});
    CHECK(admit_delivery(huge, route(), kTiers, 1024, kNow).message->attempt() == route().retry.max_attempts());
    auto negative = delivery({{"x-idemq-attempt", std::int64_t{-5}}});
    CHECK(admit_delivery(negative, route(), kTiers, 1024, kNow).message->attempt() == 1);
}

TEST_CASE("intake refuses a body over the limit, keeping it for the dead-letter copy") {
    auto d = delivery({}, std::string(2000, 'x'));
    const auto admission = admit_delivery(d, route(), kTiers, 1024, kNow);
    REQUIRE(admission.refusal);
    CHECK(admission.refusal->reason == "message-too-large");
    CHECK(admission.message->body().size() == 2000);
}

TEST_CASE("intake sends an early delayed retry round again, but not one delayed beyond the route's longest delay") {
    auto early = delivery({{"x-idemq-not-before", kNow + 5'000}}, "{}", "");
    CHECK(admit_delivery(early, route(), kTiers, 1024, kNow).delay_again == milliseconds(5'000));
    auto almost = delivery({{"x-idemq-not-before", kNow + 10}}, "{}", "");
    CHECK(!admit_delivery(almost, route(), kTiers, 1024, kNow).delay_again);
    auto crafted = delivery({{"x-idemq-not-before", kNow + 3'600'000}}, "{}", "");
    CHECK(!admit_delivery(crafted, route(), kTiers, 1024, kNow).delay_again);
}

TEST_CASE("intake believes x-idemq-original-* headers only on messages back through the default exchange") {
    const HeaderList origin{{"x-idemq-original-exchange", std::string("shop")},
                            {"x-idemq-original-routing-key", std::string("order")}};
    auto retried = delivery(origin, "{}", "");
    const auto back = admit_delivery(retried, route(), kTiers, 1024, kNow);
    CHECK(back.message->exchange() == "shop");
    CHECK(back.message->routing_key() == "order");
    auto spoofed = delivery({{"x-idemq-original-exchange", std::string("evil")}}, "{}", "shop");
    CHECK(admit_delivery(spoofed, route(), kTiers, 1024, kNow).message->exchange() == "shop");
}
