#pragma once

#include <idemq/message.hpp>

#include <cstddef>
#include <string>

namespace idemq::detail {

// Where the crash tests may kill a worker.
enum class FaultPoint {
    kInKey,        // where the idempotency key is computed: abort()
    kInHandler,    // just before the handler's transaction: abort()
    kAfterCommit,  // after COMMIT, before the ack: SIGKILL
};

// The one hook for the crash tests, in the style of userver's testpoints:
// the code names each point once, and the tests choose, by message id,
// where a worker dies. Configured from IDEMQ_TEST_ABORT_IN_KEY,
// IDEMQ_TEST_ABORT_IN_HANDLER (with IDEMQ_TEST_ABORT_ON_ATTEMPT) and
// IDEMQ_TEST_CRASH_AFTER_COMMIT (and, for the relay,
// IDEMQ_TEST_RELAY_CRASH_AFTER_CONFIRMS), read once at start; unset, it does nothing.
class FaultPoints final {
public:
    [[nodiscard]] static FaultPoints from_environment();

    // Kills the process when a test asked for `point` with this message.
    void at(FaultPoint point, const Message& message) const;

    // Confirmed rows after which the outbox relay SIGKILLs its process
    // before it records them (0: never).
    [[nodiscard]] std::size_t relay_crash_after_confirms() const noexcept { return relay_crash_after_confirms_; }

private:
    std::string in_key_;
    std::string in_handler_;
    int in_handler_attempt_ = 0;  // 0: every attempt
    std::string after_commit_;
    std::size_t relay_crash_after_confirms_ = 0;
};

}  // namespace idemq::detail
