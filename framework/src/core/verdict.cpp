#include "core/verdict.hpp"

#include "amqp/idemq_headers.hpp"
#include "common/text.hpp"

namespace idemq::detail {

FailureStamp stamp_failure(const Message& message, std::string_view earlier) {
    std::string now = format_time(std::chrono::system_clock::now());
    std::string first(message.header(header::kFirstFailureAt).value_or(earlier));
    if (first.empty()) first = now;
    return {.attempt = message.attempt(), .first_failure_at = std::move(first), .last_failure_at = std::move(now)};
}

}  // namespace idemq::detail
