#include "amqp/topology.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

namespace idemq::detail {
namespace {

// AMQP short strings (queue and exchange names) hold at most 255 bytes, and
// the dead-letter queue's name adds 4.
constexpr std::size_t kMaxQueueName = 255 - 4;

}  // namespace

std::string dead_letter_queue_name(std::string_view queue) { return std::string(queue) + ".dlq"; }

std::string tier_name(std::chrono::milliseconds tier) { return fmt::format("idemq.delay.{}ms", tier.count()); }

Route normalized(Route route) {
    if (route.handler.empty()) throw ConfigError("a handler's Route.handler (its name) must not be empty");
    if (route.queue.empty()) route.queue = route.handler;
    if (route.queue.size() > kMaxQueueName) {
        throw ConfigError(fmt::format("handler '{}': queue name longer than {} bytes", route.handler, kMaxQueueName));
    }
    if (route.queue.starts_with("amq.")) {
        throw ConfigError(
            fmt::format("handler '{}': queue names starting with 'amq.' are reserved by the broker", route.handler));
    }
    if (!route.exchange.empty() && route.routing_keys.empty()) {
        throw ConfigError(
            fmt::format("handler '{}': exchange '{}' needs at least one routing key", route.handler, route.exchange));
    }
    if (route.exchange.empty() && !route.routing_keys.empty()) {
        throw ConfigError(fmt::format("handler '{}': routing keys given without an exchange", route.handler));
    }
    if (to_string(route.exchange_type).empty()) {
        throw ConfigError(fmt::format("handler '{}': Route.exchange_type {} is not an exchange type", route.handler,
                                      static_cast<int>(route.exchange_type)));
    }
    route.retry.validate(route.handler);
    return route;
}

void declare_topology(AmqpConnection& connection, const Route& route) {
    connection.declare_queue(dead_letter_queue_name(route.queue));
    connection.declare_queue(route.queue);
    if (route.exchange.empty()) return;
    connection.declare_exchange(route.exchange, to_string(route.exchange_type));
    for (const auto& key : route.routing_keys) connection.bind_queue(route.queue, route.exchange, key);
}

}  // namespace idemq::detail
