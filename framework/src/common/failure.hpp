#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace idemq::detail {

// Values of x-idemq-reason: why a message went to the dead-letter queue.
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

// Why a message cannot be processed (or why its last attempt failed): what
// the inbox finds, the runtime decides on, the headers and metrics report.
struct Failure {
    std::string reason{};      // one of reason::k*; empty for a transient failure
    std::string error{};       // human-readable detail
    std::string error_type{};  // exception type, or "idemq" for checks of idemq's own
};

// The demangled dynamic type of `error`, e.g. "idemq::PermanentError".
[[nodiscard]] std::string exception_type_name(const std::exception& error);

// `error` as a Failure without a reason: what it says and its type.
[[nodiscard]] inline Failure failure_from(const std::exception& error, std::string_view why = {}) {
    return {.reason = std::string(why), .error = error.what(), .error_type = exception_type_name(error)};
}

}  // namespace idemq::detail
