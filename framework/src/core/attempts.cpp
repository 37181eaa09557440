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

#include "common/log.hpp"
#include "common/text.hpp"
#include "core/outage_backoff.hpp"
#include "core/retry_schedule.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

std::string now_text() { return format_time(std::chrono::system_clock::now()); }

class DeliveryAttempts final {
public:
    DeliveryAttempts(const RegisteredHandler& registered, const WorkerOptions& options, const FaultPoints& faults,
                     Telemetry& telemetry, const Job& job, DatabaseSession& session, const std::atomic<bool>& stopping)
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
          stopping_(stopping),
          fingerprint_(delivery_fingerprint(*message_)),
          first_failure_at_(message_->header(header::kFirstFailureAt).value_or("")) {
        session_.forget_losses();
    }

    Outcome run() {
        // Only a delivery the broker flags as redelivered can follow a crash:
        // the guard costs one short transaction on those alone, before any
        // code of the user's (its key function included) runs on it.
        if (message_->redelivered()) {
            if (auto stop = set_mark()) return leave(std::move(*stop));
        }
        faults_.at(FaultPoint::kInKey, *message_);
        auto key_or_outcome = resolve_key(*registered_.handler, *message_);
        if (auto* outcome = std::get_if<Outcome>(&key_or_outcome)) return leave(std::move(*outcome));
        key_ = std::get<std::string>(std::move(key_or_outcome));

        for (;;) {
            std::optional<Outcome> outcome = attempt();
            if (!outcome) continue;  // the connection broke; run the attempt again
            if (outcome->kind == OutcomeKind::kProcessed || outcome->kind == OutcomeKind::kDuplicate) {
                return *outcome;  // the mark was cleared in the same transaction
            }
            if (outcome->kind != OutcomeKind::kFailed) return leave(std::move(*outcome));
            // After the shutdown grace the worker cancels running statements:
            // a failure then is the stop's doing, and charges nothing.
            if (stopping_.load()) return leave({.kind = OutcomeKind::kRelease});

            const RetryDecision decision = decide_retry(policy_, message_->attempt(), random());
            if (decision.kind == RetryDecision::Kind::kDeadLetter) {
                outcome->kind = OutcomeKind::kDeadLetter;
                outcome->failure.reason = std::string(reason::kRetriesExhausted);
                return leave(std::move(*outcome));
            }
            if (decision.kind == RetryDecision::Kind::kDelayed) {
                outcome->kind = OutcomeKind::kRetryLater;
                outcome->next_attempt = message_->attempt() + 1;
                outcome->retry_delay = decision.delay;
                return leave(std::move(*outcome));
            }
            stamp(*outcome);
            log_message(spdlog::level::info, tags_, "attempt {} of {} failed ({}: {}); retrying in {} ms",
                        message_->attempt(), policy_.max_attempts(), outcome->failure.error_type,
                        first_line(outcome->failure.error), decision.delay.count());
            telemetry_.immediate_retry(handler_index_);
            if (!sleep_unless_stopping(decision.delay, stopping_)) return leave({.kind = OutcomeKind::kRelease});
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

    // One attempt: nullopt when the connection broke and the attempt must run
    // again on a new one (no attempt is charged for that).
    std::optional<Outcome> attempt() {
        pqxx::connection* connection = session_.get(stopping_);
        if (connection == nullptr) return Outcome{.kind = OutcomeKind::kRelease};
        if (session_.losses_while_reachable() >= kConnectionKillLimit) {
            session_.forget_losses();
            return Outcome{.kind = OutcomeKind::kFailed,
                           .failure = {.reason = {},
                                       .error = fmt::format("the Postgres connection broke {} times while handling "
                                                            "this message although Postgres stayed reachable (a "
                                                            "handler idle in its transaction longer than "
                                                            "IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS, or a statement "
                                                            "that ends the backend)",
                                                            kConnectionKillLimit),
                                       .error_type = "idemq"},
                           .attempt = message_->attempt()};
        }
        faults_.at(FaultPoint::kInHandler, *message_);
        Outcome outcome = process_delivery(*connection, *registered_.handler, name_, *message_, key_,
                                           policy_.unknown_errors_are_permanent, mark_);
        outcome.attempt = message_->attempt();
        if (outcome.kind != OutcomeKind::kRetryHere) {
            session_.forget_losses();
            return outcome;
        }
        // Running again is safe even after an in-doubt COMMIT: the claim then
        // finds the key and the delivery is a duplicate.
        session_.discard();
        if (outcome.in_doubt) telemetry_.in_doubt(handler_index_);
        log_message(spdlog::level::warn, tags_, "Postgres connection lost{} ({}); reconnecting to run it again",
                    outcome.in_doubt ? " during COMMIT" : "", first_line(outcome.failure.error));
        if (!pause_after_loss()) return Outcome{.kind = OutcomeKind::kRelease};
        return std::nullopt;
    }

    bool pause_after_loss() { return backoff_.wait(); }

    // Counts this delivery in the crash-loop table; a delivery whose earlier
    // marked deliveries died `crash_loop_limit` times is dead-lettered. A
    // release when stopping during an outage; nullopt to go on.
    std::optional<Outcome> set_mark() {
        for (;;) {
            pqxx::connection* connection = session_.get(stopping_);
            if (connection == nullptr) return Outcome{.kind = OutcomeKind::kRelease};
            try {
                const int deliveries = mark_handling_started(*connection, name_, *message_, fingerprint_);
                mark_ = fingerprint_;
                // This delivery is counted too: the others died unfinished.
                const int deaths = deliveries - 1;
                if (deaths < options_.crash_loop_limit) return std::nullopt;
                return Outcome{.kind = OutcomeKind::kDeadLetter,
                               .failure = {.reason = std::string(reason::kCrashLoop),
                                           .error = fmt::format("the process handling it died {} times before it "
                                                                "could finish (IDEMQ_CRASH_LOOP_LIMIT={})",
                                                                deaths, options_.crash_loop_limit),
                                           .error_type = "idemq"}};
            } catch (const pqxx::in_doubt_error&) {
                // Marked or not: marking again counts at most one death too many.
                session_.discard();
            } catch (const pqxx::broken_connection&) {
                session_.discard();
            }
            if (!pause_after_loss()) return Outcome{.kind = OutcomeKind::kRelease};
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

    void stamp(Outcome& outcome) {
        const std::string now = now_text();
        if (first_failure_at_.empty()) first_failure_at_ = now;
        outcome.first_failure_at = first_failure_at_;
        outcome.last_failure_at = now;
    }

    // The outcome of a delivery that leaves this thread without committing.
    Outcome leave(Outcome outcome) {
        clear_mark();
        outcome.attempt = message_->attempt();
        if (outcome.kind != OutcomeKind::kRelease) stamp(outcome);
        return outcome;
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
    const std::atomic<bool>& stopping_;
    const std::string fingerprint_;
    std::string first_failure_at_;
    std::string key_;
    std::string mark_;  // the fingerprint while this delivery is marked
    OutageBackoff backoff_{stopping_};
};

}  // namespace

Outcome handle_delivery(const Job& job, const AttemptContext& context) {
    const MessageTags tags = tags_for(context.registered.route.handler, *job.message);
    const auto started = std::chrono::steady_clock::now();
    Outcome outcome;
    try {
        outcome = DeliveryAttempts(context.registered, context.options, context.faults, context.telemetry, job,
                                   context.session, context.stopping)
                      .run();
    } catch (const std::exception& e) {
        // Not a message failure (the schema vanished, say): give it back and
        // let the operator see why.
        log_message(spdlog::level::err, tags, "{}; the delivery goes back to the queue", e.what());
        outcome = {.kind = OutcomeKind::kRelease};
        std::this_thread::sleep_for(std::chrono::seconds(1));
    } catch (...) {
        log_message(spdlog::level::err, tags, "a non-standard exception escaped; the delivery goes back to the queue");
        outcome = {.kind = OutcomeKind::kRelease};
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (outcome.kind == OutcomeKind::kProcessed) {
        context.telemetry.processed(job.handler_index,
                                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    return outcome;
}

}  // namespace idemq::detail
