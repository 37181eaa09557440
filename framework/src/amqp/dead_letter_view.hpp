#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "amqp/events.hpp"

namespace idemq::detail {

// What a dead-lettered message says about itself, read back from the
// x-idemq-* headers amqp/dead_letter wrote: for the dlq commands, idemqctl
// trace and the hostile suite. Missing or unreadable headers read as empty
// or 0.
struct DeadLetterView {
    std::string message_id;
    std::string correlation_id;
    std::string reason;
    std::string error_type;
    std::string error;
    std::string handler;
    std::string failed_at;
    std::string original_exchange;
    std::string original_routing_key;
    std::int64_t attempts = 0;
    std::int64_t replay_count = 0;
    std::size_t size = 0;
    Headers headers;
};

[[nodiscard]] DeadLetterView view_of(const Delivery& delivery);

}  // namespace idemq::detail
