#pragma once

#include <idemq/message.hpp>
#include <idemq/outbox.hpp>

#include <pqxx/transaction_base>

#include <cstddef>
#include <string>
#include <string_view>

namespace idemq::detail {

// The handling a message is staged from: what a staged message inherits and
// derives its id from.
struct StagedFrom {
    std::string_view handler;
    std::string_view idempotency_key;
    std::string_view correlation_id;   // the handled message's effective one
    const Message* message = nullptr;  // for traceparent / tracestate
};

// The message id of the `index`th message (from 0) that a handling of `key`
// by `handler` stages: a UUID, the same on every attempt of that handling.
[[nodiscard]] std::string derived_message_id(std::string_view handler, std::string_view key, std::size_t index);

// `message` checked and completed: the derived fields filled in as
// OutgoingMessage documents. Throws idemq::PermanentError for a message
// that can never be published.
[[nodiscard]] OutgoingMessage completed(OutgoingMessage message, const StagedFrom* from, std::size_t index);

// The Outbox a handler's Context gives: stages through the prepared
// statement of the handler's connection, in the handler's transaction.
class HandlerOutbox final : public Outbox {
public:
    HandlerOutbox(pqxx::transaction_base& tx, StagedFrom from) : tx_(tx), from_(from) {}
    void publish(OutgoingMessage message) override;
    [[nodiscard]] std::size_t staged() const noexcept { return staged_; }

private:
    pqxx::transaction_base& tx_;
    StagedFrom from_;
    std::size_t staged_ = 0;
};

}  // namespace idemq::detail
