#include "core/batch_runner.hpp"

#include <pqxx/except>

#include <algorithm>
#include <unordered_set>

#include "common/failure.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "core/outage_backoff.hpp"

namespace idemq::detail {

void run_batch(std::vector<Job>& jobs, const BatchRun& run) {
    RegisteredHandler& registered = run.registered;
    DatabaseSession& session = run.session;
    const std::stop_token& stop = run.stop;
    const std::string& name = registered.route.handler;
    std::vector<BatchItem> items;
    std::vector<std::size_t> members;  // jobs in the batch transaction, by position in `items`
    std::vector<std::size_t> alone;    // jobs handled one by one afterwards
    std::unordered_set<std::string> keys;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto key_or_failure = resolve_key(*registered.handler, *jobs[i].message);
        auto* key = std::get_if<std::string>(&key_or_failure);
        // A key seen twice in one batch: the second waits until the first
        // committed (then it is a duplicate) or failed.
        if (key == nullptr || !keys.insert(*key).second) {
            alone.push_back(i);
            continue;
        }
        items.push_back({.message = jobs[i].message.get(), .key = std::move(*key)});
        members.push_back(i);
    }
    // A failing batch is split in halves and each half tried again, down to
    // single messages, which take the per-message path (retries, DLQ).
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    // Stopping during an outage: everything not settled goes back, the part
    // being tried [begin, end) included.
    const auto give_back = [&](std::size_t begin, std::size_t end) {
        for (std::size_t k = begin; k < end; ++k) alone.push_back(members[k]);
        for (const auto& [b, e] : ranges) {
            for (std::size_t k = b; k < e; ++k) alone.push_back(members[k]);
        }
        for (const std::size_t k : alone) run.post(jobs[k], Verdict::release());
    };
    if (!items.empty()) ranges.emplace_back(0, items.size());
    while (!ranges.empty()) {
        const auto [begin, end] = ranges.back();
        ranges.pop_back();
        if (end - begin == 1) {
            alone.push_back(members[begin]);
            continue;
        }
        const std::vector<BatchItem> part(items.begin() + static_cast<std::ptrdiff_t>(begin),
                                          items.begin() + static_cast<std::ptrdiff_t>(end));
        const auto started = std::chrono::steady_clock::now();
        std::vector<AttemptResult> results;
        bool failed = false;
        // A batch that keeps breaking its connection while Postgres stays
        // reachable holds a message that does, and is split.
        session.forget_losses();
        OutageBackoff backoff(stop);
        for (;;) {
            pqxx::connection* connection = session.get(stop);
            if (connection != nullptr && session.losses_while_reachable() >= kConnectionKillLimit) {
                log().info("handler={}: a batch of {} broke its Postgres connection {} times; splitting it", name,
                           part.size(), session.losses_while_reachable());
                session.forget_losses();
                failed = true;
                break;
            }
            if (connection == nullptr) return give_back(begin, end);
            try {
                results = process_batch(*connection, *registered.batch, name, part);
                break;
            } catch (const pqxx::in_doubt_error&) {
                // The inbox settles it: the batch runs again and finds what committed.
                run.telemetry.in_doubt(jobs.front().handler_index);
                session.discard();
            } catch (const pqxx::broken_connection&) {
                session.discard();
            } catch (const std::exception& e) {
                if (connection->is_open()) {
                    log().info("handler={}: a batch of {} failed ({}: {}); splitting it", name, part.size(),
                               exception_type_name(e), first_line(e.what()));
                    failed = true;
                    break;
                }
                session.discard();
            } catch (...) {
                failed = true;
                break;
            }
            if (!backoff.wait()) return give_back(begin, end);
        }
        if (failed) {
            const std::size_t middle = begin + (end - begin) / 2;
            ranges.emplace_back(middle, end);
            ranges.emplace_back(begin, middle);
            continue;
        }
        run.telemetry.batch_committed(jobs.front().handler_index, part.size());
        const double share = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() /
                             static_cast<double>(part.size());
        for (std::size_t k = begin; k < end; ++k) {
            Job& job = jobs[members[k]];
            AttemptResult& result = results[k - begin];
            switch (result.end) {
                case AttemptResult::End::kCommitted:
                    run.telemetry.processed(job.handler_index, share);
                    if (result.staged > 0) run.telemetry.outbox_staged(result.staged);
                    run.post(job, Verdict::ack());
                    break;
                case AttemptResult::End::kDuplicate: run.post(job, Verdict::duplicate()); break;
                case AttemptResult::End::kRefused:
                    run.post(job, Verdict::dead_letter(std::move(result.failure), stamp_failure(*job.message)));
                    break;
                // process_batch throws for these instead.
                case AttemptResult::End::kFailed:
                case AttemptResult::End::kDatabaseLost: run.run_alone(job); break;
            }
        }
    }
    std::sort(alone.begin(), alone.end());
    for (const std::size_t i : alone) run.run_alone(jobs[i]);
}

}  // namespace idemq::detail
