#pragma once

#include "amqp/idemq_headers.hpp"
#include "amqp/properties.hpp"
#include "common/failure.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace idemq::detail {

// Each header value idemq writes is cut to this many bytes: a header larger
// than the broker's frame_max would close the whole connection.
inline constexpr std::size_t kMaxHeaderValueBytes = 1024;

// `text` cut to at most `max_bytes` bytes on a UTF-8 character boundary,
// ending in "..." when cut.
[[nodiscard]] std::string bounded(std::string_view text, std::size_t max_bytes = kMaxHeaderValueBytes);

struct DeadLetterContext {
    std::string_view handler;
    std::string_view original_exchange;
    std::string_view original_routing_key;
    int attempt = 1;
    std::string_view first_failure_at;  // RFC 3339
    std::string_view last_failure_at;   // RFC 3339
};

// The headers of a message sent to wait in a delay tier before attempt `next_attempt`.
[[nodiscard]] HeaderList retry_headers(const Failure& failure, const DeadLetterContext& context, int next_attempt,
                                       std::chrono::system_clock::time_point not_before);

// The x-idemq-* headers that say why and where a message was dead-lettered.
[[nodiscard]] HeaderList dead_letter_headers(const Failure& failure, const DeadLetterContext& context);

// "host/pid", naming the process that gave up on a message.
[[nodiscard]] const std::string& process_identity();

}  // namespace idemq::detail
