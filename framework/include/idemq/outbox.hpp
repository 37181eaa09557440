#pragma once

#include <idemq/message.hpp>

#include <pqxx/transaction_base>

#include <string>
#include <string_view>

namespace idemq {

/// A message to send once the transaction that stages it commits: written to
/// the outbox table in that transaction, published by the relay afterwards,
/// at least once. Every field is bytes except `content_type`.
struct OutgoingMessage {
    std::string exchange{};     ///< Empty: the default exchange, `routing_key` names the queue.
    std::string routing_key{};  ///< At most 255 bytes.
    std::string body{};
    /// Empty: derived. For a message a handler stages, from the handler, the
    /// idempotency key and the message's place among those it staged, so a
    /// retried handling stages the same ids again; outside a handler, a
    /// random id. Either way every copy the relay sends carries the same id,
    /// so the receiving inbox absorbs duplicates.
    std::string message_id{};
    /// Empty: the handled message's correlation id (its message id when it
    /// had none); outside a handler, none.
    std::string correlation_id{};
    std::string content_type{};
    /// `traceparent` and `tracestate` are copied from the handled message
    /// unless set here.
    Headers headers{};
    /// Messages with the same non-empty key are published one at a time, in
    /// the order they were staged; messages without one in any order.
    std::string ordering_key{};
};

/// Where a handler stages what it sends on: `ctx.outbox().publish(...)`.
/// Staged messages commit or roll back with the handler's writes.
class Outbox {
public:
    virtual ~Outbox() = default;
    /// Stages `message` in the handler's transaction. Throws
    /// idemq::PermanentError for a message that can never be published (a
    /// routing key over 255 bytes, say): the handling is dead-lettered with
    /// that reason.
    virtual void publish(OutgoingMessage message) = 0;
};

namespace outbox {

/// Stages `message` in `tx` from code that is not a handler (a web request
/// that writes to the same database, say), into the outbox of `schema` (the
/// worker's IDEMQ_SCHEMA). It is published once `tx` commits.
void stage(pqxx::transaction_base& tx, OutgoingMessage message, std::string_view schema = "idemq");

/// Asks the relay holding the outbox to look as soon as `tx` commits, by a
/// Postgres NOTIFY (one per transaction however often it is called), rather
/// than at its next poll (250 ms) — what IDEMQ_OUTBOX_NOTIFY does for
/// handlers. Postgres serializes the commits of notifying transactions, so
/// use it where latency matters more than commit throughput (docs/outbox.md).
void wake_relay(pqxx::transaction_base& tx);

}  // namespace outbox
}  // namespace idemq
