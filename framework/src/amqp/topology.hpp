#pragma once

#include <idemq/handler.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "amqp/connection.hpp"

namespace idemq::detail {

// Name of a route's dead-letter queue: "<queue>.dlq".
[[nodiscard]] std::string dead_letter_queue_name(std::string_view queue);

// Name of a delay tier's exchange and queue, e.g. "idemq.delay.4000ms"
// (core/retry_schedule says which tiers there are).
[[nodiscard]] std::string tier_name(std::chrono::milliseconds tier);

// Fills in defaults (queue = handler name) and throws ConfigError for a route
// that cannot work.
[[nodiscard]] Route normalized(Route route);

// Declares the route's exchange, queue, bindings and dead-letter queue. Every
// declaration is idempotent; one that conflicts with what exists (another
// exchange type, say) fails with the broker's own message.
void declare_topology(AmqpConnection& connection, const Route& route);

}  // namespace idemq::detail
