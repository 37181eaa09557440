#pragma once

#include <idemq/options.hpp>

#include <optional>
#include <stop_token>

#include "core/fault_points.hpp"
#include "core/handler_pool.hpp"
#include "core/registered_handler.hpp"
#include "core/verdict.hpp"
#include "inbox/database_session.hpp"
#include "inbox/process_delivery.hpp"
#include "ops/telemetry.hpp"

namespace idemq::detail {

// What the attempts of one delivery need from the worker.
struct AttemptContext {
    const RegisteredHandler& registered;
    const WorkerOptions& options;
    const FaultPoints& faults;
    Telemetry& telemetry;
    DatabaseSession& session;
    const std::stop_token& stop;
};

// Handler thread: one delivery from its key to its verdict. The crash-loop
// guard marks a redelivered delivery before any user code runs on it; each
// attempt runs in its own transaction (inbox/process_delivery); failures are
// retried at once as the route says, then handed on as a delayed retry or a
// dead letter; a lost Postgres connection is waited out and never charged;
// a stop gives the delivery back. With `first_attempt`, that attempt has been
// made already (a kFailed or kRefused from a group commit): its result is
// the first, charged as any other. Never throws.
[[nodiscard]] Verdict handle_delivery(const Job& job, const AttemptContext& context,
                                      std::optional<AttemptResult> first_attempt = std::nullopt);

}  // namespace idemq::detail
