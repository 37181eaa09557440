#pragma once

#include <idemq/message.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "common/failure.hpp"

namespace idemq::detail {

// Which attempt of a message failed, and when it first and last did (RFC
// 3339): what a dead letter or a delayed retry carries in its headers. Made
// by stamp_failure() only.
struct FailureStamp {
    int attempt = 1;
    std::string first_failure_at{};
    std::string last_failure_at{};
};

// A failure of `message`'s current attempt, happening now. The first failure
// is the one the message's headers name (an earlier delivery's), else
// `earlier` (an earlier attempt of this delivery), else this one.
[[nodiscard]] FailureStamp stamp_failure(const Message& message, std::string_view earlier = {});

// How a delivery ends: what the handler thread hands to settlement (on the
// loop thread), which carries it out. Made only by the named constructors,
// so a verdict that needs a failure and its stamp always has them.
class Verdict final {
public:
    enum class Kind {
        kAck,         // the handler's transaction committed: ack
        kDuplicate,   // the key was in the inbox with the same body: ack, handler not run
        kDeadLetter,  // cannot succeed: publish to the DLQ, then ack
        kRetryLater,  // publish to a delay tier for the next attempt, then ack
        kRelease,     // give the delivery back to the broker untouched
    };

    [[nodiscard]] static Verdict ack() { return Verdict(Kind::kAck); }
    [[nodiscard]] static Verdict duplicate() { return Verdict(Kind::kDuplicate); }
    [[nodiscard]] static Verdict release() { return Verdict(Kind::kRelease); }
    [[nodiscard]] static Verdict dead_letter(Failure failure, FailureStamp stamp) {
        Verdict verdict(Kind::kDeadLetter);
        verdict.failure_ = std::move(failure);
        verdict.stamp_ = std::move(stamp);
        return verdict;
    }
    [[nodiscard]] static Verdict retry_later(Failure failure, FailureStamp stamp, std::chrono::milliseconds delay) {
        Verdict verdict(Kind::kRetryLater);
        verdict.failure_ = std::move(failure);
        verdict.stamp_ = std::move(stamp);
        verdict.retry_delay_ = delay;
        return verdict;
    }

    [[nodiscard]] Kind kind() const noexcept { return kind_; }
    // kDeadLetter and kRetryLater: why, and which attempt failed when.
    [[nodiscard]] const Failure& failure() const noexcept { return failure_; }
    [[nodiscard]] const FailureStamp& stamp() const noexcept { return stamp_; }
    // kRetryLater: how long the message waits before attempt stamp().attempt + 1.
    [[nodiscard]] std::chrono::milliseconds retry_delay() const noexcept { return retry_delay_; }

private:
    explicit Verdict(Kind kind) noexcept : kind_(kind) {}

    Kind kind_;
    Failure failure_{};
    FailureStamp stamp_{};
    std::chrono::milliseconds retry_delay_{0};
};

}  // namespace idemq::detail
