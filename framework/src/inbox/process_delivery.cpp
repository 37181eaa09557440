#include "inbox/process_delivery.hpp"

#include <idemq/errors.hpp>

#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/result>

#include <algorithm>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "common/fingerprint.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "inbox/store_sql.hpp"
#include "inbox/transaction.hpp"
#include "outbox/doorbell.hpp"
#include "outbox/staging.hpp"

namespace idemq::detail {
namespace {

class DeliveryContext final : public Context {
public:
    DeliveryContext(std::string_view handler, const Message& message, std::string_view key, pqxx::transaction_base& tx)
        : handler_(handler),
          message_(message),
          key_(key),
          correlation_id_(effective_correlation_id(message)),
          logger_(handler, message.message_id(), correlation_id_),
          outbox_(
              tx,
              {.handler = handler, .idempotency_key = key, .correlation_id = correlation_id_, .message = &message}) {}

    [[nodiscard]] std::string_view handler_name() const noexcept override { return handler_; }
    [[nodiscard]] std::string_view message_id() const noexcept override { return message_.message_id(); }
    [[nodiscard]] std::string_view correlation_id() const noexcept override { return correlation_id_; }
    [[nodiscard]] std::string_view idempotency_key() const noexcept override { return key_; }
    [[nodiscard]] int attempt() const noexcept override { return message_.attempt(); }
    [[nodiscard]] std::string_view trace_parent() const noexcept override { return header("traceparent"); }
    [[nodiscard]] std::string_view trace_state() const noexcept override { return header("tracestate"); }
    [[nodiscard]] Logger& log() noexcept override { return logger_; }
    [[nodiscard]] Outbox& outbox() override { return outbox_; }
    [[nodiscard]] std::size_t staged() const noexcept { return outbox_.staged(); }

private:
    [[nodiscard]] std::string_view header(std::string_view name) const noexcept {
        const auto it = message_.headers().find(name);
        return it == message_.headers().end() ? std::string_view() : std::string_view(it->second);
    }

    std::string_view handler_;
    const Message& message_;
    std::string_view key_;
    std::string_view correlation_id_;
    TaggedLogger logger_;
    HandlerOutbox outbox_;
};

class Batch final : public BatchContext {
public:
    Batch(std::string_view handler, pqxx::transaction_base& tx, std::span<const Message> fresh,
          const std::vector<std::string>& keys)
        : handler_(handler), logger_(handler, "(batch)", "(batch)"), fresh_(fresh) {
        outboxes_.reserve(fresh.size());
        for (std::size_t i = 0; i < fresh.size(); ++i) {
            outboxes_.emplace_back(tx, StagedFrom{.handler = handler,
                                                  .idempotency_key = keys[i],
                                                  .correlation_id = effective_correlation_id(fresh[i]),
                                                  .message = &fresh[i]});
        }
    }
    [[nodiscard]] std::string_view handler_name() const noexcept override { return handler_; }
    [[nodiscard]] Logger& log() noexcept override { return logger_; }
    [[nodiscard]] Outbox& outbox(const Message& message) override {
        // The handler gets a span over fresh_: a message of its batch is one of them.
        const auto* at = &message;
        if (fresh_.empty() || at < fresh_.data() || at >= fresh_.data() + fresh_.size()) {
            throw Error("BatchContext::outbox() takes a message of the batch being handled");
        }
        return outboxes_[static_cast<std::size_t>(at - fresh_.data())];
    }
    // What the handling of the `i`th fresh message staged.
    [[nodiscard]] std::size_t staged(std::size_t i) const noexcept { return outboxes_[i].staged(); }

private:
    std::string_view handler_;
    TaggedLogger logger_;
    std::span<const Message> fresh_;
    std::vector<HandlerOutbox> outboxes_;
};

using End = AttemptResult::End;

Failure idemq_failure(std::string_view why, std::string error) {
    return {.reason = std::string(why), .error = std::move(error), .error_type = "idemq"};
}

AttemptResult refused(Failure failure) { return {.end = End::kRefused, .failure = std::move(failure)}; }

AttemptResult ended(End end, const std::exception& e, std::string_view why = {}) {
    return {.end = end,
            .failure = failure_from(e, why),
            .in_doubt = dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr};
}

// No two different keys share a fingerprint row: the key, the ids and the
// marks travel as binary parameters, never as C strings a NUL would cut.
pqxx::binarystring bytes(std::string_view value) { return pqxx::binarystring(value.data(), value.size()); }

AttemptResult key_conflict(std::string_view key) {
    return refused(idemq_failure(reason::kKeyConflict, "idempotency key '" + printable(key) +
                                                           "' was first used with a different body; the first "
                                                           "message's effect stands"));
}

enum class Claim { kNew, kDuplicate, kConflict };

// Records `key` in the inbox inside `tx`, or finds it there already: with the
// same body (a duplicate) or another (a key conflict).
Claim claim_key(pqxx::transaction_base& tx, const std::string& name, const Message& message, const std::string& key,
                const std::string& fingerprint) {
    // A row that conflicts with the claim but is gone when its fingerprint is
    // read was pruned in between: the key is new again, so claim it again.
    for (int tries = 0;; ++tries) {
        const pqxx::result claimed = tx.exec_prepared(kClaimStatement, name, bytes(key), fingerprint,
                                                      bytes(message.message_id()), bytes(message.correlation_id()));
        if (!claimed.empty()) return Claim::kNew;
        // Read after the claim: ON CONFLICT waited for any concurrent claimer,
        // and this statement's snapshot sees what it committed.
        const pqxx::result stored = tx.exec_prepared(kFingerprintStatement, name, bytes(key));
        if (stored.empty() && tries < 3) continue;
        return !stored.empty() && stored[0][0].as<std::string>() == fingerprint ? Claim::kDuplicate : Claim::kConflict;
    }
}

AttemptResult claim_and_handle(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                               const Message& message, const std::string& key, const std::string& mark_to_clear) {
    const std::string name(handler_name);
    InboxTransaction tx(connection);
    if (!mark_to_clear.empty()) tx.exec_prepared(kClearStartedStatement, name, bytes(mark_to_clear));
    const Claim claim = claim_key(tx, name, message, key, sha256_hex(message.body()));
    if (claim != Claim::kNew) {
        tx.commit();
        return claim == Claim::kDuplicate ? AttemptResult{.end = End::kDuplicate} : key_conflict(key);
    }
    DeliveryContext context(handler_name, message, key, tx);
    handler.handle(message, tx, context);
    tx.commit();
    if (context.staged() > 0) OutboxDoorbell::instance().ring();
    return {.end = End::kCommitted, .staged = context.staged()};
}

// libpqxx 6.4 reports serialization failures and deadlocks as
// transaction_rollback, which is not an sql_error; an sql_error can still
// carry their SQLSTATE when raised by other paths.
bool is_lock_conflict(const std::exception& e) {
    if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) return true;
    const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
    return sql != nullptr && (sql->sqlstate() == "40001" || sql->sqlstate() == "40P01");
}

// Inside a catch block: how the attempt whose exception is in flight ended.
// The order of these handlers is the failure classification: see
// docs/guarantees.md.
AttemptResult current_failure(const pqxx::connection& connection, bool unknown_errors_are_permanent) {
    try {
        throw;
    } catch (const PermanentError& e) {
        return ended(End::kRefused, e, reason::kPermanentError);
    } catch (const pqxx::in_doubt_error& e) {
        return ended(End::kDatabaseLost, e);
    } catch (const pqxx::broken_connection& e) {
        return ended(End::kDatabaseLost, e);
    } catch (const std::exception& e) {
        // A statement that failed because the server went away (terminated
        // backend, shutdown) is the database's failure, not the message's.
        if (!connection.is_open()) return ended(End::kDatabaseLost, e);
        // Postgres refusing the message's data (invalid UTF-8 in a text
        // column, a value out of range) refuses it on every attempt.
        // So does libpqxx refusing to quote or escape it (bytes that are not
        // valid in the connection's encoding), before Postgres sees it.
        if (dynamic_cast<const pqxx::data_exception*>(&e) != nullptr ||
            dynamic_cast<const pqxx::argument_error*>(&e) != nullptr) {
            return ended(End::kRefused, e, reason::kPermanentError);
        }
        if (is_transient(e) || !unknown_errors_are_permanent) {
            AttemptResult failed = ended(End::kFailed, e);
            failed.lock_conflict = is_lock_conflict(e);
            return failed;
        }
        return ended(End::kRefused, e, reason::kPermanentError);
    } catch (...) {
        return {.end = unknown_errors_are_permanent ? End::kRefused : End::kFailed,
                .failure = {.reason = std::string(reason::kPermanentError),
                            .error = "a non-standard exception",
                            .error_type = "unknown"}};
    }
}

// Inside a catch block: the group's lock timeout ended a statement.
bool waited_too_long_for_a_lock() {
    try {
        throw;
    } catch (const pqxx::sql_error& e) {
        return e.sqlstate() == "55P03";
    } catch (...) {
        return false;
    }
}

// One member of a group, in the savepoint set for it: claim, handler,
// release. Its failure is rolled back to the savepoint and returned; a
// failure that leaves no transaction to go on with is thrown.
AttemptResult run_member(InboxTransaction& tx, pqxx::connection& connection, Handler& handler,
                         std::string_view handler_name, const GroupMember& member, bool last,
                         bool unknown_errors_are_permanent) {
    const Message& message = *member.message;
    AttemptResult result{.end = End::kCommitted};
    try {
        const Claim claim = claim_key(tx, std::string(handler_name), message, member.key, sha256_hex(message.body()));
        if (claim == Claim::kNew) {
            DeliveryContext context(handler_name, message, member.key, tx);
            handler.handle(message, tx, context);
            result.staged = context.staged();
        } else {
            result = claim == Claim::kDuplicate ? AttemptResult{.end = End::kDuplicate} : key_conflict(member.key);
        }
    } catch (...) {
        result = current_failure(connection, unknown_errors_are_permanent);
        // Nothing to roll back to: the group as a whole failed.
        if (result.end == End::kDatabaseLost) throw;
        result.lock_conflict = result.lock_conflict || waited_too_long_for_a_lock();
        tx.roll_back_to_savepoint();
        return result;
    }
    try {
        tx.release_savepoint(!last);
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != "25P02") throw;
        // The handler caught a failed statement's error: its work is void,
        // and so is what it reported.
        tx.roll_back_to_savepoint();
        return ended(End::kFailed, aborted_by_swallowed_error());
    }
    return result;
}

}  // namespace

bool is_transient(const std::exception& e) {
    return dynamic_cast<const TransientError*>(&e) != nullptr || is_lock_conflict(e);
}

std::vector<AttemptResult> process_batch(pqxx::connection& connection, BatchHandler& handler,
                                         std::string_view handler_name, const std::vector<BatchItem>& items) {
    std::vector<std::string> keys, fingerprints, message_ids, correlation_ids;
    for (const auto& item : items) {
        keys.push_back(to_hex(item.key));
        fingerprints.push_back(sha256_hex(item.message->body()));
        message_ids.push_back(to_hex(item.message->message_id()));
        correlation_ids.push_back(to_hex(item.message->correlation_id()));
    }
    const std::string name(handler_name);
    InboxTransaction tx(connection);
    std::unordered_set<std::string> claimed;  // hex keys
    for (const auto& row : tx.exec_prepared(kClaimBatchStatement, name, text_array(keys), text_array(fingerprints),
                                            text_array(message_ids), text_array(correlation_ids))) {
        claimed.insert(row[0].as<std::string>());
    }
    std::vector<AttemptResult> outcomes(items.size(), AttemptResult{.end = End::kCommitted});
    std::vector<Message> fresh;
    std::vector<std::string> fresh_keys;   // raw bytes, as the handler's key function gave them
    std::vector<std::size_t> fresh_items;  // their places in `items`
    std::vector<std::string> seen;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (claimed.contains(keys[i])) {
            fresh.push_back(*items[i].message);
            fresh_keys.push_back(items[i].key);
            fresh_items.push_back(i);
        } else {
            seen.push_back(keys[i]);
        }
    }
    if (!seen.empty()) {
        // Read after the claim: ON CONFLICT waited for concurrent claimers.
        std::unordered_map<std::string, std::string> stored;
        for (const auto& row : tx.exec_prepared(kFingerprintsStatement, name, text_array(seen))) {
            stored.emplace(row[0].as<std::string>(), row[1].as<std::string>());
        }
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (claimed.contains(keys[i])) continue;
            const auto it = stored.find(keys[i]);
            // A row pruned between the claim and the read: the batch fails
            // and its halves claim again (a key conflict would be a lie).
            if (it == stored.end()) throw TransientError("an inbox row was pruned while its key was claimed");
            outcomes[i] =
                it->second == fingerprints[i] ? AttemptResult{.end = End::kDuplicate} : key_conflict(items[i].key);
        }
    }
    std::size_t staged = 0;
    if (!fresh.empty()) {
        Batch context(handler_name, tx, std::span<const Message>(fresh), fresh_keys);
        handler.handle_batch(std::span<const Message>(fresh), tx, context);
        for (std::size_t j = 0; j < fresh.size(); ++j) {
            outcomes[fresh_items[j]].staged = context.staged(j);
            staged += context.staged(j);
        }
    }
    tx.commit();
    if (staged > 0) OutboxDoorbell::instance().ring();
    return outcomes;
}

std::variant<std::string, Failure> resolve_key(const Handler& handler, const Message& message) {
    std::string key;
    try {
        key = handler.idempotency_key(message);
    } catch (const PermanentError& e) {
        return failure_from(e, reason::kBadKey);
    } catch (const std::exception& e) {
        Failure failure = failure_from(e, reason::kBadKey);
        failure.error = "the idempotency key function threw: " + failure.error;
        return failure;
    } catch (...) {
        return Failure{.reason = std::string(reason::kBadKey),
                       .error = "the idempotency key function threw a non-standard exception",
                       .error_type = "unknown"};
    }
    if (key.empty()) {
        return idemq_failure(reason::kMissingKey, "the message has no idempotency key (no message-id property)");
    }
    if (key.size() > kMaxKeyBytes) {
        return idemq_failure(reason::kBadKey, "the idempotency key is " + std::to_string(key.size()) +
                                                  " bytes long; at most " + std::to_string(kMaxKeyBytes) +
                                                  " are accepted");
    }
    return key;
}

std::string delivery_fingerprint(const Message& message) {
    // The id's length first: no id/body split of other bytes hashes alike.
    const std::string id(message.message_id());
    return sha256(std::to_string(id.size()) + ':' + id + std::string(message.body()));
}

int mark_handling_started(pqxx::connection& connection, std::string_view handler_name, const Message& message,
                          const std::string& mark) {
    InboxTransaction tx(connection);
    const pqxx::result row =
        tx.exec_prepared(kMarkStartedStatement, std::string(handler_name), bytes(mark), bytes(message.message_id()));
    tx.commit();
    return row[0][0].as<int>();
}

void clear_handling_started(pqxx::connection& connection, std::string_view handler_name, const std::string& mark) {
    InboxTransaction tx(connection);
    tx.exec_prepared(kClearStartedStatement, std::string(handler_name), bytes(mark));
    tx.commit();
}

AttemptResult process_delivery(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                               const Message& message, const std::string& key, bool unknown_errors_are_permanent,
                               const std::string& mark_to_clear) {
    try {
        return claim_and_handle(connection, handler, handler_name, message, key, mark_to_clear);
    } catch (...) {
        return current_failure(connection, unknown_errors_are_permanent);
    }
}

GroupOutcome process_group(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                           const std::vector<GroupMember>& members, bool unknown_errors_are_permanent,
                           const std::stop_token& stop) {
    GroupOutcome outcome;
    outcome.results.reserve(members.size());
    InboxTransaction tx(connection);
    tx.begin_group(kGroupLockTimeout);
    std::size_t staged = 0;
    for (std::size_t i = 0; i < members.size(); ++i) {
        // Stopping: what ran so far commits, the rest goes back untouched.
        if (stop.stop_requested()) break;
        outcome.results.push_back(run_member(tx, connection, handler, handler_name, members[i], i + 1 == members.size(),
                                             unknown_errors_are_permanent));
        staged += outcome.results.back().staged;
        // A lock conflict ends the group: its COMMIT frees the rows the
        // other side waits for, and the rest run in the next group.
        if (outcome.results.back().lock_conflict) break;
    }
    tx.commit();
    if (staged > 0) OutboxDoorbell::instance().ring();
    return outcome;
}

}  // namespace idemq::detail
