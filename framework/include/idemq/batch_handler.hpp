#pragma once

#include <idemq/errors.hpp>
#include <idemq/logger.hpp>
#include <idemq/message.hpp>
#include <idemq/outbox.hpp>
#include <idemq/statements.hpp>

#include <pqxx/types>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace idemq {

/// What a batch handler may know about its batch. Valid only during
/// `handle_batch()`; per-message details are on each Message.
class BatchContext {
public:
    virtual ~BatchContext() = default;
    [[nodiscard]] virtual std::string_view handler_name() const noexcept = 0;
    [[nodiscard]] virtual Logger& log() noexcept = 0;
    /// Where the handler stages what it sends on because of `message` (one
    /// of the batch's): ids are derived from that message's key, as
    /// Context::outbox() does for a single message. A BatchContext of the
    /// user's own that does not override it has no outbox.
    [[nodiscard]] virtual Outbox& outbox(const Message& message) {
        (void)message;
        throw Error("this BatchContext has no outbox");
    }
};

/// How a batch handler's deliveries are grouped.
struct BatchOptions {
    std::size_t max_messages = 100;       ///< A batch is cut at this many messages…
    std::chrono::milliseconds linger{5};  ///< …or this long after its first message, if fewer arrived.
};

/// A handler that applies many messages in one transaction: one multi-row
/// inbox claim, the handler's writes for all new messages, one COMMIT. Every
/// guarantee of `Handler` holds per message: duplicates (also within one
/// batch) never reach it, and when a batch fails its messages are handled one
/// by one, so the good ones commit and only the bad one is retried or
/// dead-lettered as `Route::retry` says.
class BatchHandler {
public:
    virtual ~BatchHandler() = default;

    /// Applies the effects of `messages` (all new, distinct keys) through
    /// `tx`. Runs on a worker thread; throw as `Handler::handle` would. It is
    /// also called with a single message when a batch is split.
    virtual void handle_batch(std::span<const Message> messages, pqxx::transaction_base& tx, BatchContext& ctx) = 0;

    /// The prepared statements `handle_batch()` runs, as `Handler::prepare`
    /// (called by `Worker::add_batch_handler`). By default, none.
    virtual void prepare(Statements& statements) { (void)statements; }

    /// The idempotency key, as `Handler::idempotency_key`.
    [[nodiscard]] virtual std::string idempotency_key(const Message& message) const {
        return std::string(message.message_id());
    }
};

}  // namespace idemq
