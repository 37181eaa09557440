#pragma once

#include <string_view>

// Every header idemq writes or reads on a message, by one name each: the
// runtime, the DLQ tools, idemqctl and the tests all use these.
namespace idemq::detail::header {

// Every idemq header starts so; a replayed copy drops them all.
inline constexpr std::string_view kPrefix = "x-idemq-";

// A message's retry state between attempts.
inline constexpr std::string_view kAttempt = "x-idemq-attempt";
inline constexpr std::string_view kNotBefore = "x-idemq-not-before";  // Unix time in ms
inline constexpr std::string_view kFirstFailureAt = "x-idemq-first-failure-at";
inline constexpr std::string_view kLastFailureAt = "x-idemq-last-failure-at";
inline constexpr std::string_view kLastError = "x-idemq-last-error";
inline constexpr std::string_view kLastErrorType = "x-idemq-last-error-type";
inline constexpr std::string_view kOriginalExchange = "x-idemq-original-exchange";
inline constexpr std::string_view kOriginalRoutingKey = "x-idemq-original-routing-key";

// Why, where and by whom a message was dead-lettered.
inline constexpr std::string_view kReason = "x-idemq-reason";
inline constexpr std::string_view kError = "x-idemq-error";
inline constexpr std::string_view kErrorType = "x-idemq-error-type";
inline constexpr std::string_view kHandler = "x-idemq-handler";
inline constexpr std::string_view kAttempts = "x-idemq-attempts";
inline constexpr std::string_view kFailedAt = "x-idemq-failed-at";
inline constexpr std::string_view kFailedBy = "x-idemq-failed-by";

// A copy replayed or imported from the DLQ.
inline constexpr std::string_view kReplayedAt = "x-idemq-replayed-at";
inline constexpr std::string_view kReplayCount = "x-idemq-replay-count";

// Properties a republished copy cannot carry as they were.
inline constexpr std::string_view kOriginalExpiration = "x-idemq-original-expiration";
inline constexpr std::string_view kOriginalUserId = "x-idemq-original-user-id";
// The original's CC routing header, as text: the copy must reach one queue only.
inline constexpr std::string_view kOriginalCc = "x-idemq-original-cc";
// Names of the original's headers left off a copy so that it fits in a frame.
inline constexpr std::string_view kDroppedHeaders = "x-idemq-dropped-headers";

// Ties a basic.return to its publish: a return carries the message but not
// its confirm sequence number.
inline constexpr std::string_view kPublishSequence = "x-idemq-publish-seq";

}  // namespace idemq::detail::header
