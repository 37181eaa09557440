#include "amqp/dead_letter.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <array>

namespace idemq::detail {

std::string bounded(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return std::string(text);
    constexpr std::string_view kEllipsis = "...";
    std::size_t cut = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
    // Step back over UTF-8 continuation bytes so no character is split.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;
    return std::string(text.substr(0, cut)) + std::string(kEllipsis.substr(0, max_bytes - cut));
}

const std::string& process_identity() {
    static const std::string identity = [] {
        std::array<char, 256> host{};
        if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
        return fmt::format("{}/{}", host.data(), getpid());
    }();
    return identity;
}

HeaderList dead_letter_headers(const Failure& failure, const DeadLetterContext& context) {
    return {
        {std::string(header::kReason), bounded(failure.reason)},
        {std::string(header::kError), bounded(failure.error)},
        {std::string(header::kErrorType), bounded(failure.error_type)},
        {std::string(header::kHandler), bounded(context.handler)},
        {std::string(header::kOriginalExchange), bounded(context.original_exchange)},
        {std::string(header::kOriginalRoutingKey), bounded(context.original_routing_key)},
        {std::string(header::kAttempts), static_cast<std::int64_t>(context.attempt)},
        {std::string(header::kFirstFailureAt), bounded(context.first_failure_at)},
        {std::string(header::kLastFailureAt), bounded(context.last_failure_at)},
        {std::string(header::kFailedAt), bounded(context.last_failure_at)},
        {std::string(header::kFailedBy), bounded(process_identity())},
    };
}

HeaderList retry_headers(const Failure& failure, const DeadLetterContext& context, int next_attempt,
                         std::chrono::system_clock::time_point not_before) {
    const auto not_before_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(not_before.time_since_epoch()).count();
    return {
        {std::string(header::kAttempt), static_cast<std::int64_t>(next_attempt)},
        {std::string(header::kNotBefore), static_cast<std::int64_t>(not_before_ms)},
        {std::string(header::kFirstFailureAt), bounded(context.first_failure_at)},
        {std::string(header::kLastFailureAt), bounded(context.last_failure_at)},
        {std::string(header::kLastError), bounded(failure.error)},
        {std::string(header::kLastErrorType), bounded(failure.error_type)},
        {std::string(header::kOriginalExchange), bounded(context.original_exchange)},
        {std::string(header::kOriginalRoutingKey), bounded(context.original_routing_key)},
    };
}

}  // namespace idemq::detail
