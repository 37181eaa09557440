#pragma once

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>

#include <pqxx/connection>

#include <chrono>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

#include "common/failure.hpp"
#include "common/log.hpp"

namespace idemq::detail {

// How one attempt in the database ended (docs/guarantees.md classifies the
// failures). What follows from it — retry, wait, dead-letter — is decided by
// core/attempts, not here.
struct AttemptResult {
    enum class End {
        kCommitted,     // the handler ran and COMMIT succeeded
        kDuplicate,     // the key was already in the inbox with the same body
        kRefused,       // the message cannot succeed (failure.reason says why)
        kFailed,        // the handler failed, maybe transiently: the retry policy decides
        kDatabaseLost,  // the database failed, not the message: run the attempt again
    };
    End end = End::kCommitted;
    Failure failure{};      // kRefused, kFailed, kDatabaseLost
    bool in_doubt = false;  // kDatabaseLost after a COMMIT with unknown outcome
    // kFailed: Postgres aborted it to resolve a deadlock or a serialization
    // conflict, no fault of the message's.
    bool lock_conflict = false;
    std::size_t staged = 0;  // kCommitted: outbox rows the handling staged, now committed
};

// The message's idempotency key, or why it has none that idemq can use (the
// message is dead-lettered then).
[[nodiscard]] std::variant<std::string, Failure> resolve_key(const Handler& handler, const Message& message);

// The life of one delivery in the database: BEGIN; claim the idempotency key
// in the inbox; run the handler in the same transaction when the key is new;
// COMMIT, which is real or fails (a handler that swallowed a failed statement
// gets a kFailed, never kCommitted). With a non-empty `mark_to_clear` (a
// delivery fingerprint), the crash-loop mark is removed in the same
// transaction. Runs on a handler thread. Never throws: every failure is an
// AttemptResult (the classification is in docs/guarantees.md).
[[nodiscard]] AttemptResult process_delivery(pqxx::connection& connection, Handler& handler,
                                             std::string_view handler_name, const Message& message,
                                             const std::string& key, bool unknown_errors_are_permanent,
                                             const std::string& mark_to_clear);

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
// message, one COMMIT. Returns per item kCommitted, kDuplicate or a
// kRefused for a key conflict. Throws what libpqxx or the handler throw;
// nothing has committed then. Items must have distinct keys.
[[nodiscard]] std::vector<AttemptResult> process_batch(pqxx::connection& connection, BatchHandler& handler,
                                                       std::string_view handler_name,
                                                       const std::vector<BatchItem>& items);

// One message of a group commit, its key resolved.
struct GroupMember {
    const Message* message = nullptr;
    std::string key;
};

// How a group went: one result per member that ran, in the members' order
// (kCommitted, kDuplicate, kRefused or kFailed). A member whose result has
// lock_conflict set ended the group: it was rolled back, and it and the
// members past the results did not run (as when a stop comes first) and
// hold nothing.
struct GroupOutcome {
    std::vector<AttemptResult> results;
};

// A group commit: one transaction, each member in a savepoint of its own —
// claim, handler, release. A member that fails is rolled back to its
// savepoint alone, and its result says why (a handler that swallowed a failed
// statement gets a kFailed, as in process_delivery); the others go on. One
// COMMIT settles the group: the results hold only if it returns. Throws what
// libpqxx throws for the group as a whole — the connection lost (nothing
// committed), in doubt (unknown), a failure no savepoint can undo (a failed
// exec() that rolled the whole transaction back) — and then no result holds.
// Members should come in key order, so that two groups claim in the same
// order and cannot deadlock on the inbox. Keys must be distinct.
[[nodiscard]] GroupOutcome process_group(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                                         const std::vector<GroupMember>& members, bool unknown_errors_are_permanent,
                                         const std::stop_token& stop);

// How long a member of a group waits for a lock before it gives up, is
// rolled back to its savepoint and runs again alone, uncharged. A group
// holds its members' locks until its COMMIT, so two groups that take hot
// rows in opposite orders deadlock far more often than single messages do,
// and Postgres finds a deadlock only after deadlock_timeout (1 s by default,
// not settable by an unprivileged role): this bounds what each one costs.
inline constexpr std::chrono::milliseconds kGroupLockTimeout{100};

// A connection that breaks this often during one attempt (or one batch) while
// Postgres stays reachable was broken by the message: a handler idling in its
// transaction past idle_in_transaction_session_timeout, a statement that ends
// the backend. The attempt fails then, and the message takes the retry path.
inline constexpr int kConnectionKillLimit = 3;

// Longest idempotency key accepted: Postgres cannot index much longer keys,
// and a key that long is a bug in the key function.
inline constexpr std::size_t kMaxKeyBytes = 512;

}  // namespace idemq::detail
