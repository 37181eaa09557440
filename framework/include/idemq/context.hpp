#pragma once

#include <idemq/errors.hpp>
#include <idemq/logger.hpp>
#include <idemq/outbox.hpp>

#include <string_view>

namespace idemq {

/// What a handler may know about the delivery it is handling. An interface, so
/// users can fake it in their own unit tests. Valid only during `handle()`.
class Context {
public:
    virtual ~Context() = default;

    [[nodiscard]] virtual std::string_view handler_name() const noexcept = 0;
    [[nodiscard]] virtual std::string_view message_id() const noexcept = 0;
    /// The message's correlation id, or its message id when it had none.
    [[nodiscard]] virtual std::string_view correlation_id() const noexcept = 0;
    /// The key this delivery claimed in the inbox.
    [[nodiscard]] virtual std::string_view idempotency_key() const noexcept = 0;
    /// 1 on the first attempt.
    [[nodiscard]] virtual int attempt() const noexcept = 0;
    /// The W3C trace context of the message (`traceparent`, `tracestate`
    /// headers), empty when absent. idemq copies both onto retried and
    /// dead-lettered copies, so a trace follows the message through failures.
    [[nodiscard]] virtual std::string_view trace_parent() const noexcept = 0;
    [[nodiscard]] virtual std::string_view trace_state() const noexcept = 0;
    /// A logger whose lines carry handler, message id and correlation id.
    [[nodiscard]] virtual Logger& log() noexcept = 0;
    /// Where the handler stages the messages it sends on, in its own
    /// transaction (see idemq/outbox.hpp). A Context of the user's own that
    /// does not override it has no outbox.
    [[nodiscard]] virtual Outbox& outbox() { throw Error("this Context has no outbox"); }
};

}  // namespace idemq
