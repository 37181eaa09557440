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
