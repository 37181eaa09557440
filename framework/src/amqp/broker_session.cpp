#include "amqp/broker_session.hpp"

#include <fmt/format.h>

#include "amqp/dead_letter.hpp"
#include "amqp/topology.hpp"

namespace idemq::detail {

std::string consumer_tag(std::size_t route_index, std::uint64_t generation, std::uint64_t round) {
    return fmt::format("idemq/{}/r{}/g{}/{}", process_identity(), route_index, generation, round);
}

std::unique_ptr<BrokerSession> open_broker_session(const WorkerOptions& options, const std::vector<Route>& routes,
                                                   const std::vector<std::chrono::milliseconds>& tiers,
                                                   std::uint64_t generation) {
    std::string names;
    for (const auto& route : routes) names += (names.empty() ? "" : ",") + route.handler;
    const auto settings = [&](std::string_view role) {
        return AmqpConnection::Settings{
            .url = options.amqp_url,
            .security = BrokerSecurity::of(options),
            .connection_name = fmt::format("idemq {} {} ({})", role, names, process_identity()),
            .heartbeat = options.heartbeat};
    };
    auto session = std::make_unique<BrokerSession>();
    session->consumer = std::make_unique<AmqpConnection>(settings("consumer"));
    // Retry and dead-letter publishes get a connection of their own: when the
    // broker blocks a publishing connection, acks on the consumer keep flowing.
    session->publisher_connection = std::make_unique<AmqpConnection>(settings("publisher"));
    session->publisher = std::make_unique<ConfirmedPublisher>(*session->publisher_connection);
    for (const auto tier : tiers) session->consumer->declare_delay_tier(tier_name(tier), tier);
    for (const auto& route : routes) declare_topology(*session->consumer, route);
    session->consumer->set_prefetch(static_cast<std::uint16_t>(options.prefetch));
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const std::string tag = consumer_tag(i, generation, 0);
        session->consumer->consume(routes[i].queue, tag);
        session->handler_by_consumer_tag.emplace(tag, i);
    }
    return session;
}

}  // namespace idemq::detail
