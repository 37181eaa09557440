#include "core/group_runner.hpp"

#include <pqxx/except>

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "common/failure.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "core/outage_backoff.hpp"

namespace idemq::detail {
namespace {

using End = AttemptResult::End;

// The group's transaction, run again on a new connection while the database
// fails rather than the group: nullopt when the group failed as a whole (its
// members go alone) or the worker stopped (`stopped` is set then).
std::optional<GroupOutcome> commit_group(const std::vector<GroupMember>& members, const BatchRun& run,
                                         std::size_t handler_index, bool& stopped) {
    const std::string& name = run.registered.route.handler;
    DatabaseSession& session = run.session;
    session.forget_losses();
    OutageBackoff backoff(run.stop);
    for (;;) {
        pqxx::connection* connection = session.get(run.stop);
        if (connection == nullptr) {
            stopped = true;
            return std::nullopt;
        }
        // A group that keeps breaking its connection while Postgres stays
        // reachable holds a message that does: alone, it is found.
        if (session.losses_while_reachable() >= kConnectionKillLimit) {
            log().info("handler={}: a group of {} broke its Postgres connection {} times; handling them alone", name,
                       members.size(), session.losses_while_reachable());
            session.forget_losses();
            return std::nullopt;
        }
        try {
            return process_group(*connection, *run.registered.handler, name, members,
                                 run.registered.route.retry.unknown_errors_are_permanent, run.stop);
        } catch (const pqxx::in_doubt_error&) {
            // The inbox settles it: the group runs again and finds what committed.
            run.telemetry.in_doubt(handler_index);
            session.discard();
        } catch (const pqxx::broken_connection&) {
            session.discard();
        } catch (const std::exception& e) {
            if (connection->is_open()) {
                log().info("handler={}: a group of {} failed as a whole ({}: {}); handling them alone", name,
                           members.size(), exception_type_name(e), first_line(e.what()));
                return std::nullopt;
            }
            session.discard();
        } catch (...) {
            return std::nullopt;
        }
        if (!backoff.wait()) {
            stopped = true;
            return std::nullopt;
        }
    }
}

}  // namespace

void run_group(std::vector<Job>& jobs, const BatchRun& run) {
    std::vector<std::size_t> pending;  // jobs not settled yet, in key order
    std::vector<std::string> keys;     // by job
    std::vector<std::size_t> alone;    // jobs handled one by one afterwards
    std::unordered_set<std::string> seen;
    keys.resize(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto key_or_failure = resolve_key(*run.registered.handler, *jobs[i].message);
        auto* key = std::get_if<std::string>(&key_or_failure);
        // A key the per-message path refuses, or one seen twice in a group
        // (the second waits until the first committed or failed).
        if (key == nullptr || !seen.insert(*key).second) {
            alone.push_back(i);
            continue;
        }
        keys[i] = std::move(*key);
        pending.push_back(i);
    }
    // Every group claims in the same (byte) order: no two wait on each
    // other's inbox rows.
    std::sort(pending.begin(), pending.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });

    const std::size_t handler_index = jobs.front().handler_index;
    std::vector<std::pair<std::size_t, AttemptResult>> failed;  // (job, its first attempt)
    // A lock conflict ends a group after the members before it committed;
    // the rest form the next group, until every member is settled.
    while (pending.size() > 1) {
        std::vector<GroupMember> group;
        group.reserve(pending.size());
        for (const std::size_t i : pending) group.push_back({.message = jobs[i].message.get(), .key = keys[i]});
        bool stopped = false;
        const auto started = std::chrono::steady_clock::now();
        std::optional<GroupOutcome> outcome = commit_group(group, run, handler_index, stopped);
        if (stopped) {
            // Nothing of this round committed, and nothing else will run.
            for (const std::size_t i : pending) run.post(jobs[i], Verdict::release());
            for (const std::size_t i : alone) run.post(jobs[i], Verdict::release());
            for (const auto& [i, result] : failed) run.post(jobs[i], Verdict::release());
            return;
        }
        if (!outcome) {
            alone.insert(alone.end(), pending.begin(), pending.end());
            pending.clear();
            break;
        }
        std::vector<AttemptResult>& results = outcome->results;
        const bool conflict = !results.empty() && results.back().lock_conflict;
        const std::size_t committed = results.size() - (conflict ? 1 : 0);
        if (committed > 0) run.telemetry.batch_committed(handler_index, committed);
        const double share = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() /
                             static_cast<double>(std::max<std::size_t>(results.size(), 1));
        for (std::size_t k = 0; k < committed; ++k) {
            Job& job = jobs[pending[k]];
            AttemptResult& result = results[k];
            switch (result.end) {
                case End::kCommitted:
                    run.telemetry.processed(handler_index, share);
                    if (result.staged > 0) run.telemetry.outbox_staged(result.staged);
                    run.post(job, Verdict::ack());
                    break;
                case End::kDuplicate: run.post(job, Verdict::duplicate()); break;
                case End::kRefused:
                case End::kFailed:
                    if (run.stop.stop_requested()) {
                        // Cancelled by the shutdown: charges nothing.
                        run.post(job, Verdict::release());
                    } else {
                        failed.emplace_back(pending[k], std::move(result));
                    }
                    break;
                // process_group throws for this instead.
                case End::kDatabaseLost: alone.push_back(pending[k]); break;
            }
        }
        std::vector<std::size_t> rest(pending.begin() + static_cast<std::ptrdiff_t>(committed), pending.end());
        if (run.stop.stop_requested() || rest.size() == pending.size()) {
            // Stopping, or the very first member conflicted: alone, its
            // lock is waited for without a timeout, and nothing is charged.
            if (!rest.empty() && !run.stop.stop_requested()) {
                alone.push_back(rest.front());
                rest.erase(rest.begin());
            }
            if (run.stop.stop_requested()) {
                for (const std::size_t i : rest) run.post(jobs[i], Verdict::release());
                rest.clear();
            }
        }
        pending = std::move(rest);
    }
    alone.insert(alone.end(), pending.begin(), pending.end());
    for (auto& [i, result] : failed) run.go_on_alone(jobs[i], std::move(result));
    std::sort(alone.begin(), alone.end());
    for (const std::size_t i : alone) run.run_alone(jobs[i]);
}

}  // namespace idemq::detail
