#pragma once

#include <vector>

#include "core/batch_runner.hpp"
#include "core/handler_pool.hpp"

namespace idemq::detail {

// Handler thread: several deliveries of one plain handler in one transaction
// (Route::group_commit), each in a savepoint of its own, in key order. After
// the COMMIT, committed members are acked and duplicates settled; a member
// whose handler failed goes on alone from that first attempt (retried,
// delayed or dead-lettered as its route says). A lock conflict (deadlock,
// or a wait past the group's lock timeout) ends a group after the members
// before it: they commit, and the conflicting member and the rest form the
// next group, uncharged. A failure of the group as a
// whole (nothing committed) sends every member alone through the
// per-message path; a database outage is waited out and the group runs
// again; a stop gives back what has not committed.
void run_group(std::vector<Job>& jobs, const BatchRun& run);

}  // namespace idemq::detail
