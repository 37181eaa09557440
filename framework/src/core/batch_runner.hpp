#pragma once

#include <functional>
#include <stop_token>
#include <vector>

#include "core/handler_pool.hpp"
#include "core/registered_handler.hpp"
#include "core/verdict.hpp"
#include "inbox/database_session.hpp"
#include "inbox/process_delivery.hpp"
#include "ops/telemetry.hpp"

namespace idemq::detail {

// What a batch or a group commit needs from the worker running it.
struct BatchRun {
    RegisteredHandler& registered;
    Telemetry& telemetry;
    DatabaseSession& session;
    const std::stop_token& stop;
    std::function<void(const Job&, Verdict)> post;  // hands one delivery's verdict to the loop
    std::function<void(Job&)> run_alone;            // the per-message path: attempts, retries, DLQ
    // The per-message path after a first attempt made in a group commit.
    std::function<void(Job&, AttemptResult)> go_on_alone = {};
};

// Handler thread: several deliveries of one batch handler in one
// transaction. A failure other than a database outage splits the batch in
// halves, down to single messages, which take the per-message path: one bad
// message cannot hold back the others, and follows its own retry or
// dead-letter path. A database outage is waited out; a batch that keeps
// breaking its connection while Postgres stays reachable is split too.
void run_batch(std::vector<Job>& jobs, const BatchRun& run);

}  // namespace idemq::detail
