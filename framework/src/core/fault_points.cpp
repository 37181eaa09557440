#include "core/fault_points.hpp"

#include <csignal>
#include <cstdlib>

#include "common/log.hpp"

namespace idemq::detail {
namespace {

std::string env_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
}

}  // namespace

FaultPoints FaultPoints::from_environment() {
    FaultPoints faults;
    faults.in_key_ = env_or_empty("IDEMQ_TEST_ABORT_IN_KEY");
    faults.in_handler_ = env_or_empty("IDEMQ_TEST_ABORT_IN_HANDLER");
    faults.in_handler_attempt_ = std::atoi(env_or_empty("IDEMQ_TEST_ABORT_ON_ATTEMPT").c_str());
    faults.after_commit_ = env_or_empty("IDEMQ_TEST_CRASH_AFTER_COMMIT");
    faults.relay_crash_after_confirms_ = static_cast<std::size_t>(
        std::strtoull(env_or_empty("IDEMQ_TEST_RELAY_CRASH_AFTER_CONFIRMS").c_str(), nullptr, 10));
    return faults;
}

void FaultPoints::at(FaultPoint point, const Message& message) const {
    const std::string& wanted = point == FaultPoint::kInKey       ? in_key_
                                : point == FaultPoint::kInHandler ? in_handler_
                                                                  : after_commit_;
    if (wanted.empty() || message.message_id() != wanted) return;
    if (point == FaultPoint::kInHandler && in_handler_attempt_ != 0 && message.attempt() != in_handler_attempt_) return;
    if (point == FaultPoint::kAfterCommit) {
        log().critical("IDEMQ_TEST_CRASH_AFTER_COMMIT: killing the process after COMMIT of {}", wanted);
        log().flush();
        std::raise(SIGKILL);
        return;
    }
    log().critical("{}: aborting on attempt {} of {}",
                   point == FaultPoint::kInKey ? "IDEMQ_TEST_ABORT_IN_KEY" : "IDEMQ_TEST_ABORT_IN_HANDLER",
                   message.attempt(), wanted);
    log().flush();
    std::abort();
}

}  // namespace idemq::detail
