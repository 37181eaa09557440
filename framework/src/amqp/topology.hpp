#pragma once

#include <idemq/handler.hpp>

#include <string>
#include <string_view>

#include "amqp/connection.hpp"

namespace idemq::detail {

[[nodiscard]] std::string dead_letter_queue_name(std::string_view queue);

// Fills in defaults (queue = handler name) and throws ConfigError for a route
// that cannot work.
[[nodiscard]] Route normalized(Route route);

// Declares the route's exchange, queue, bindings and dead-letter queue. Every
// declaration is idempotent; one that conflicts with what exists (another
// exchange type, say) fails with the broker's own message.
void declare_topology(AmqpConnection& connection, const Route& route);

}  // namespace idemq::detail
