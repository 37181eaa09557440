#pragma once

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>

#include <pqxx/connection>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include "amqp/dead_letter.hpp"
#include "common/log.hpp"

namespace idemq::detail {

enum class OutcomeKind {
    kProcessed,   // handler ran, COMMIT succeeded: ack
    kDuplicate,   // key already in the inbox with the same body: ack
    kDeadLetter,  // cannot succeed: publish to the DLQ, then ack
    kFailed,      // the handler failed transiently: retry as the policy says
    kRetryHere,   // the database failed, not the message: reconnect and run again
    kRetryLater,  // publish to a delay tier for attempt `next_attempt`, then ack
    kRelease,     // give the delivery back to the broker untouched (shutting down)
};

struct Outcome {
    OutcomeKind kind = OutcomeKind::kRelease;
    Failure failure{};                         // for everything but kProcessed and kDuplicate
    bool in_doubt = false;                     // kRetryHere after a COMMIT with unknown outcome
    int attempt = 1;                           // the attempt that ran last
    int next_attempt = 0;                      // kRetryLater
    std::chrono::milliseconds retry_delay{0};  // kRetryLater
    std::string first_failure_at{};            // RFC 3339, once an attempt failed
    std::string last_failure_at{};
};

// The message's correlation id, or its message id when it has none: what
// Context, the logs and the metrics report.
[[nodiscard]] inline std::string_view effective_correlation_id(const Message& message) noexcept {
    return message.correlation_id().empty() ? message.message_id() : message.correlation_id();
}

// What the logs of one delivery are tagged with.
[[nodiscard]] inline MessageTags tags_for(std::string_view handler, const Message& message) {
    return {handler, message.message_id(), effective_correlation_id(message)};
}

// The message's idempotency key, or the dead-letter outcome when it has none
// that idemq can use.
[[nodiscard]] std::variant<std::string, Outcome> resolve_key(const Handler& handler, const Message& message);

// The life of one delivery in the database: BEGIN; claim the idempotency key
// in the inbox; run the handler in the same transaction when the key is new;
// COMMIT, which is real or fails (a handler that swallowed a failed statement
// gets a kFailed, never kProcessed). With a non-empty `mark_to_clear` (a
// delivery fingerprint), the crash-loop mark is removed in the same
// transaction. Runs on a handler thread. Never throws: every failure is an
// Outcome (the classification is in docs/guarantees.md).
[[nodiscard]] Outcome process_delivery(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                                       const Message& message, const std::string& key,
                                       bool unknown_errors_are_permanent, const std::string& mark_to_clear);

// What the crash-loop guard knows a message by: the SHA-256 (raw bytes) of its
// message id and body, the same on every delivery of it and known before the
// handler's key function runs.
[[nodiscard]] std::string delivery_fingerprint(const Message& message);

// Crash-loop guard: counts a delivery that is about to reach a handler (own
// short transaction), and forgets the count. Throw what libpqxx throws.
[[nodiscard]] int mark_handling_started(pqxx::connection& connection, std::string_view handler_name,
                                        const Message& message, const std::string& mark);
void clear_handling_started(pqxx::connection& connection, std::string_view handler_name, const std::string& mark);

// Failures retried whatever the policy says: TransientError, and Postgres
// aborting the transaction to resolve a conflict (40001, 40P01).
[[nodiscard]] bool is_transient(const std::exception& error);

// One message of a batch, its key resolved.
struct BatchItem {
    const Message* message = nullptr;
    std::string key;
};

// A batch in one transaction: one multi-row claim, the handler for every new
// message, one COMMIT. Returns per item kProcessed, kDuplicate or a
// kDeadLetter for a key conflict. Throws what libpqxx or the handler throw;
// nothing has committed then. Items must have distinct keys.
[[nodiscard]] std::vector<Outcome> process_batch(pqxx::connection& connection, BatchHandler& handler,
                                                 std::string_view handler_name, const std::vector<BatchItem>& items);

// A connection that breaks this often during one attempt (or one batch) while
// Postgres stays reachable was broken by the message: a handler idling in its
// transaction past idle_in_transaction_session_timeout, a statement that ends
// the backend. The attempt fails then, and the message takes the retry path.
inline constexpr int kConnectionKillLimit = 3;

// Longest idempotency key accepted: Postgres cannot index much longer keys,
// and a key that long is a bug in the key function.
inline constexpr std::size_t kMaxKeyBytes = 512;

}  // namespace idemq::detail
