#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "amqp/connection.hpp"

namespace idemq::detail {

// Publishes one message at a time exactly as given, with nothing added to
// its properties (ConfirmedPublisher tags each publish with a header of its
// own), and waits for the broker's verdict. For tests and the hostile suite.
class RawPublisher final {
public:
    explicit RawPublisher(const std::string& url, const BrokerSecurity& security = {});

    // nullopt once the broker confirmed the message, else why it did not
    // take it: unroutable (the publish is mandatory), refused, or unencodable.
    // Throws BrokerError when no verdict comes within `timeout`.
    [[nodiscard]] std::optional<std::string> publish(const std::string& exchange, const std::string& routing_key,
                                                     const OwnedProperties& properties, const std::string& body,
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

    [[nodiscard]] AmqpConnection& connection() noexcept { return connection_; }

private:
    AmqpConnection connection_;
};

}  // namespace idemq::detail
