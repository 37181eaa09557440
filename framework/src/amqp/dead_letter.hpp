#pragma once

#include "amqp/idemq_headers.hpp"
#include "amqp/properties.hpp"

#include <chrono>
#include <exception>
#include <string>
#include <string_view>

namespace idemq::detail {

// Values of x-idemq-reason.
namespace reason {
inline constexpr std::string_view kPermanentError = "permanent-error";
inline constexpr std::string_view kMissingKey = "missing-idempotency-key";
inline constexpr std::string_view kBadKey = "bad-idempotency-key";
inline constexpr std::string_view kKeyConflict = "idempotency-key-conflict";
inline constexpr std::string_view kTooLarge = "message-too-large";
inline constexpr std::string_view kRetriesExhausted = "retries-exhausted";
inline constexpr std::string_view kCrashLoop = "crash-loop";
// The delivery could not be turned into an idemq::Message at all.
inline constexpr std::string_view kMalformedMessage = "malformed-message";
}  // namespace reason

// Why a message cannot be processed.
struct Failure {
    std::string reason{};      // one of reason::k*
    std::string error{};       // human-readable detail
    std::string error_type{};  // exception type, or "idemq" for checks of idemq's own
};

// Each header value idemq writes is cut to this many bytes: a header larger
// than the broker's frame_max would close the whole connection.
inline constexpr std::size_t kMaxHeaderValueBytes = 1024;

// `text` cut to at most `max_bytes` bytes on a UTF-8 character boundary,
// ending in "..." when cut.
[[nodiscard]] std::string bounded(std::string_view text, std::size_t max_bytes = kMaxHeaderValueBytes);

// The demangled dynamic type of `error`, e.g. "idemq::PermanentError".
[[nodiscard]] std::string exception_type_name(const std::exception& error);

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

// RFC 3339 UTC with milliseconds.
[[nodiscard]] std::string format_time(std::chrono::system_clock::time_point time);

}  // namespace idemq::detail
