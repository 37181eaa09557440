#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include "amqp/topology.hpp"

using idemq::ConfigError;
using idemq::Route;
using idemq::detail::normalized;

TEST_CASE("a route's queue defaults to the handler name and its DLQ is <queue>.dlq") {
    const Route route = normalized({.handler = "orders.ship"});
    CHECK(route.queue == "orders.ship");
    CHECK(idemq::detail::dead_letter_queue_name(route.queue) == "orders.ship.dlq");
}

TEST_CASE("a route that cannot work is refused at registration") {
    CHECK_THROWS_AS((void)normalized({.handler = ""}), ConfigError);
    CHECK_THROWS_AS((void)normalized({.handler = "h", .exchange = "x"}), ConfigError);
    CHECK_THROWS_AS((void)normalized({.handler = "h", .routing_keys = {"k"}}), ConfigError);
    CHECK_THROWS_AS((void)normalized({.handler = "h", .queue = "amq.q"}), ConfigError);
    CHECK_THROWS_AS((void)normalized({.handler = "h", .queue = std::string(300, 'q')}), ConfigError);
}

TEST_CASE("an exchange type is one of the four AMQP types, named as the broker names them") {
    CHECK(idemq::to_string(idemq::ExchangeType::kDirect) == "direct");
    CHECK(idemq::to_string(idemq::ExchangeType::kFanout) == "fanout");
    CHECK(idemq::to_string(idemq::ExchangeType::kTopic) == "topic");
    CHECK(idemq::to_string(idemq::ExchangeType::kHeaders) == "headers");
    CHECK(normalized({.handler = "h"}).exchange_type == idemq::ExchangeType::kTopic);
    // Only a cast can make another value; the route refuses it.
    CHECK_THROWS_AS((void)normalized({.handler = "h", .exchange_type = static_cast<idemq::ExchangeType>(7)}),
                    ConfigError);
}
