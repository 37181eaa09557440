// One delivery on a handler thread: the crash-loop mark, the key, each
// attempt in its own transaction, immediate retries, and the decision what
// follows. Database outages are waited out here, never charged.
#include "core/attempts.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <pqxx/except>

#include <cstdlib>
#include <random>
#include <thread>
#include <utility>

#include "common/log.hpp"
#include "common/text.hpp"
#include "core/outage_backoff.hpp"
#include "core/retry_schedule.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

class DeliveryAttempts final {
public:
    DeliveryAttempts(const RegisteredHandler& registered, const WorkerOptions& options, const FaultPoints& faults,
                     Telemetry& telemetry, const Job& job, DatabaseSession& session, const std::stop_token& stop,
                     std::optional<AttemptResult> first_attempt)
        : registered_(registered),
          name_(registered.route.handler),
          policy_(registered.route.retry),
          options_(options),
          faults_(faults),
          telemetry_(telemetry),
          handler_index_(job.handler_index),
          message_(job.message),
          tags_(tags_for(name_, *message_)),
          session_(session),
          stop_(stop),
          fingerprint_(delivery_fingerprint(*message_)),
          first_attempt_(std::move(first_attempt)) {
        session_.forget_losses();
    }

    Verdict run() {
        // Only a delivery the broker flags as redelivered can follow a crash:
        // the guard costs one short transaction on those alone, before any
        // code of the user's (its key function included) runs on it.
        if (message_->redelivered()) {
            if (auto stop = set_mark()) return leave(std::move(*stop));
        }
        faults_.at(FaultPoint::kInKey, *message_);
        auto key_or_failure = resolve_key(*registered_.handler, *message_);
        if (auto* failure = std::get_if<Failure>(&key_or_failure)) {
            return leave(Verdict::dead_letter(std::move(*failure), stamp()));
        }
        key_ = std::get<std::string>(std::move(key_or_failure));

        for (;;) {
            std::optional<AttemptResult> result =
                first_attempt_ ? std::exchange(first_attempt_, std::nullopt) : attempt();
            if (!result) return leave(Verdict::release());
            switch (result->end) {
                // The mark was cleared in the same transaction.
                case AttemptResult::End::kCommitted: return Verdict::ack();
                case AttemptResult::End::kDuplicate: return Verdict::duplicate();
                case AttemptResult::End::kRefused:
                    return leave(Verdict::dead_letter(std::move(result->failure), stamp()));
                // attempt() reconnects and runs again on a lost connection
                // itself: it never ends with kDatabaseLost.
                case AttemptResult::End::kDatabaseLost:
                case AttemptResult::End::kFailed: break;
            }
            // After the shutdown grace the worker cancels running statements:
            // a failure then is the stop's doing, and charges nothing.
            if (stop_.stop_requested()) return leave(Verdict::release());

            Failure failure = std::move(result->failure);
            const RetryDecision decision = decide_retry(policy_, message_->attempt(), random());
            if (decision.kind == RetryDecision::Kind::kDeadLetter) {
                failure.reason = std::string(reason::kRetriesExhausted);
                return leave(Verdict::dead_letter(std::move(failure), stamp()));
            }
            if (decision.kind == RetryDecision::Kind::kDelayed) {
                return leave(Verdict::retry_later(std::move(failure), stamp(), decision.delay));
            }
            (void)stamp();
            log_message(spdlog::level::info, tags_, "attempt {} of {} failed ({}: {}); retrying in {} ms",
                        message_->attempt(), policy_.max_attempts(), failure.error_type, first_line(failure.error),
                        decision.delay.count());
            telemetry_.immediate_retry(handler_index_);
            if (!sleep_unless_stopped(decision.delay, stop_)) return leave(Verdict::release());
            message_ = std::make_shared<const Message>(message_->with_attempt(message_->attempt() + 1));
            // The next attempt may be what kills the process: it runs marked,
            // and the mark stays until the delivery is settled.
            if (mark_.empty()) {
                if (auto stop = set_mark()) return leave(std::move(*stop));
            }
        }
    }

private:
    static std::mt19937_64& random() {
        thread_local std::mt19937_64 generator{std::random_device{}()};
        return generator;
    }

    // One attempt, run again on a new connection as long as the database
    // fails rather than the message (no attempt is charged for that):
    // nullopt when the worker stops first.
    std::optional<AttemptResult> attempt() {
        for (;;) {
            pqxx::connection* connection = session_.get(stop_);
            if (connection == nullptr) return std::nullopt;
            if (session_.losses_while_reachable() >= kConnectionKillLimit) {
                session_.forget_losses();
                return AttemptResult{
                    .end = AttemptResult::End::kFailed,
                    .failure = {.reason = {},
                                .error = fmt::format("the Postgres connection broke {} times while handling "
                                                     "this message although Postgres stayed reachable (a "
                                                     "handler idle in its transaction longer than "
                                                     "IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS, or a statement "
                                                     "that ends the backend)",
                                                     kConnectionKillLimit),
                                .error_type = "idemq"}};
            }
            faults_.at(FaultPoint::kInHandler, *message_);
            AttemptResult result = process_delivery(*connection, *registered_.handler, name_, *message_, key_,
                                                    policy_.unknown_errors_are_permanent, mark_);
            if (result.end != AttemptResult::End::kDatabaseLost) {
                session_.forget_losses();
                if (result.staged > 0) telemetry_.outbox_staged(result.staged);
                return result;
            }
            // Running again is safe even after an in-doubt COMMIT: the claim
            // then finds the key and the delivery is a duplicate.
            session_.discard();
            if (result.in_doubt) telemetry_.in_doubt(handler_index_);
            log_message(spdlog::level::warn, tags_, "Postgres connection lost{} ({}); reconnecting to run it again",
                        result.in_doubt ? " during COMMIT" : "", first_line(result.failure.error));
            if (!backoff_.wait()) return std::nullopt;
        }
    }

    // Counts this delivery in the crash-loop table; a delivery whose earlier
    // marked deliveries died `crash_loop_limit` times is dead-lettered. A
    // release when stopping during an outage; nullopt to go on.
    std::optional<Verdict> set_mark() {
        for (;;) {
            pqxx::connection* connection = session_.get(stop_);
            if (connection == nullptr) return Verdict::release();
            try {
                const int deliveries = mark_handling_started(*connection, name_, *message_, fingerprint_);
                mark_ = fingerprint_;
                // This delivery is counted too: the others died unfinished.
                const int deaths = deliveries - 1;
                if (deaths < options_.crash_loop_limit) return std::nullopt;
                return Verdict::dead_letter({.reason = std::string(reason::kCrashLoop),
                                             .error = fmt::format("the process handling it died {} times before it "
                                                                  "could finish (IDEMQ_CRASH_LOOP_LIMIT={})",
                                                                  deaths, options_.crash_loop_limit),
                                             .error_type = "idemq"},
                                            stamp());
            } catch (const pqxx::in_doubt_error&) {
                // Marked or not: marking again counts at most one death too many.
                session_.discard();
            } catch (const pqxx::broken_connection&) {
                session_.discard();
            }
            if (!backoff_.wait()) return Verdict::release();
        }
    }

    // Forgets the mark of a delivery that leaves without committing. Best
    // effort: a leftover mark only counts one death too many.
    void clear_mark() noexcept {
        if (mark_.empty()) return;
        pqxx::connection* connection = session_.current();
        if (connection == nullptr) return;
        try {
            clear_handling_started(*connection, name_, mark_);
            mark_.clear();
        } catch (...) {
            session_.discard();
        }
    }

    // The current attempt failed now; an immediate retry keeps the first
    // failure's time for the attempts after it.
    FailureStamp stamp() {
        FailureStamp failed = stamp_failure(*message_, first_failure_at_);
        first_failure_at_ = failed.first_failure_at;
        return failed;
    }

    // The verdict on a delivery that leaves this thread without committing.
    Verdict leave(Verdict verdict) {
        clear_mark();
        return verdict;
    }

    const RegisteredHandler& registered_;
    const std::string& name_;
    const RetryPolicy& policy_;
    const WorkerOptions& options_;
    const FaultPoints& faults_;
    Telemetry& telemetry_;
    std::size_t handler_index_;
    std::shared_ptr<const Message> message_;
    MessageTags tags_;
    DatabaseSession& session_;
    std::stop_token stop_;
    const std::string fingerprint_;
    std::string first_failure_at_;  // of an earlier attempt of this delivery
    std::string key_;
    std::string mark_;                            // the fingerprint while this delivery is marked
    std::optional<AttemptResult> first_attempt_;  // made elsewhere already (a group commit)
    OutageBackoff backoff_{stop_};
};

}  // namespace

Verdict handle_delivery(const Job& job, const AttemptContext& context, std::optional<AttemptResult> first_attempt) {
    const MessageTags tags = tags_for(context.registered.route.handler, *job.message);
    const auto started = std::chrono::steady_clock::now();
    Verdict verdict = Verdict::release();
    try {
        verdict = DeliveryAttempts(context.registered, context.options, context.faults, context.telemetry, job,
                                   context.session, context.stop, std::move(first_attempt))
                      .run();
    } catch (const std::exception& e) {
        // Not a message failure (the schema vanished, say): give it back and
        // let the operator see why.
        log_message(spdlog::level::err, tags, "{}; the delivery goes back to the queue", e.what());
        std::this_thread::sleep_for(std::chrono::seconds(1));
    } catch (...) {
        log_message(spdlog::level::err, tags, "a non-standard exception escaped; the delivery goes back to the queue");
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (verdict.kind() == Verdict::Kind::kAck) {
        context.telemetry.processed(job.handler_index,
                                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    return verdict;
}

}  // namespace idemq::detail
