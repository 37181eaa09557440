#pragma once

#include <idemq/message.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/properties.hpp"

namespace idemq::detail {

// A message exactly as it goes on the wire: nothing is added on the way.
struct WireMessage {
    OwnedProperties properties;
    std::string body;
};

// What a case is built from: a fresh valid message and the limits it probes.
struct CaseInput {
    Message::Fields example;
    std::size_t frame_max = kDefaultFrameMax;
    std::size_t max_body_bytes = 0;
    std::string queue;  // the work queue, which routing headers aim at
};

// One kind of message a hostile publisher can send, derived from a valid
// example so that only the hostile part differs.
struct HostileCase {
    std::string name;
    std::string what;
    std::function<WireMessage(const CaseInput&)> build;
};

// The corpus, in the order the suite runs it; "baseline" (the example
// itself) comes first.
[[nodiscard]] const std::vector<HostileCase>& hostile_cases();

// The example as plain properties and body, persistent, its text headers as
// AMQP long strings.
[[nodiscard]] WireMessage plain_message(const Message::Fields& example);

}  // namespace idemq::detail
