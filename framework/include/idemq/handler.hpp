#pragma once

#include <idemq/context.hpp>
#include <idemq/message.hpp>
#include <idemq/route.hpp>
#include <idemq/statements.hpp>

#include <pqxx/types>

#include <string>
#include <vector>

namespace idemq {

/// User code that applies one message's business effect. Subclass it and
/// register it with `Worker::add_handler`; the worker owns it from then on.
class Handler {
public:
    virtual ~Handler() = default;

    /// Applies the message's effect through `tx`. Runs on a worker thread, in
    /// the same transaction that recorded the message's idempotency key, so
    /// the effect and the key commit together or not at all. Never runs twice
    /// for one key once a run has committed. Throw `PermanentError` for a
    /// message that can never succeed: it is dead-lettered at once. Any other
    /// exception rolls back and the message is retried as `Route::retry`
    /// says, then dead-lettered. Several threads may call it at once, each with
    /// its own transaction: keep shared state thread-safe.
    virtual void handle(const Message& message, pqxx::transaction_base& tx, Context& ctx) = 0;

    /// Defines the prepared statements `handle()` runs with
    /// `tx.exec_prepared(name, ...)`: the way to write a handler's SQL, as
    /// Postgres then parses and plans it once per connection, not per
    /// message. Called once, on the registering thread, by
    /// `Worker::add_handler`; the worker prepares the definitions on each of
    /// its connections, a reconnected one included, and checks them against
    /// the database when it starts. An exception from it makes `add_handler`
    /// throw ConfigError naming the handler. By default, none.
    virtual void prepare(Statements& statements) { (void)statements; }

    /// The idempotency key: by default the AMQP `message-id`. Override it to
    /// take the key from a header or to derive it from the message (tenant +
    /// operation, say). An empty key dead-letters the message with reason
    /// `missing-idempotency-key`; throwing `PermanentError` dead-letters it
    /// with reason `bad-idempotency-key`. Runs on a worker thread.
    [[nodiscard]] virtual std::string idempotency_key(const Message& message) const {
        return std::string(message.message_id());
    }
};

}  // namespace idemq
