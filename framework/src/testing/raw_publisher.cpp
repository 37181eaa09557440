#include "testing/raw_publisher.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

namespace idemq::detail {

RawPublisher::RawPublisher(const std::string& url, const BrokerSecurity& security)
    : connection_({.url = url,
                   .security = security,
                   .connection_name = "idemq raw publisher",
                   .heartbeat = std::chrono::seconds(0)}) {
    connection_.enable_publisher_confirms();
}

std::optional<std::string> RawPublisher::publish(const std::string& exchange, const std::string& routing_key,
                                                 const OwnedProperties& properties, const std::string& body,
                                                 std::chrono::milliseconds timeout) {
    try {
        connection_.publish(exchange, routing_key, true, properties, body);
    } catch (const UnencodablePublish& e) {
        return fmt::format("it cannot be published: {}", e.what());
    }
    // One publish in flight at a time: a basic.return, if any, belongs to
    // it and comes before its confirm.
    std::optional<std::string> returned;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        auto event = connection_.wait_event(std::max(left, std::chrono::milliseconds(1)));
        if (!event) {
            if (std::chrono::steady_clock::now() >= deadline) {
                throw BrokerError(fmt::format("no publisher confirm within {} ms", timeout.count()), true);
            }
            continue;
        }
        if (const auto* back = std::get_if<Returned>(&*event)) {
            returned = describe(*back);
        } else if (const auto* confirm = std::get_if<Confirm>(&*event)) {
            if (!confirm->ack) return "the broker refused it (basic.nack)";
            return returned;
        }
    }
}

}  // namespace idemq::detail
