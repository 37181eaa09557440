#pragma once

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>

#include <memory>
#include <string>
#include <vector>

#include "inbox/handler_statements.hpp"

namespace idemq::detail {

// A handler as the worker runs it: its route (defaults filled in) and the
// user's object.
struct RegisteredHandler {
    Route route;
    // For a batch handler, an adapter that hands it single messages (the
    // per-message path a failed batch falls back to); `batch` is the handler.
    std::unique_ptr<Handler> handler;
    BatchHandler* batch = nullptr;
    BatchOptions batch_options{};
    // What the handler's prepare() defined.
    Statements statements{};
};

// Every handler's statements, each name once (handlers that define the same
// statement share it), in registration order.
[[nodiscard]] std::vector<HandlerStatement> handler_statements(const std::vector<RegisteredHandler>& handlers);

// Runs a BatchHandler on one message at a time.
class SingleMessageBatch final : public Handler {
public:
    explicit SingleMessageBatch(std::unique_ptr<BatchHandler> batch) : batch_(std::move(batch)) {}
    void handle(const Message& message, pqxx::transaction_base& tx, Context& ctx) override;
    [[nodiscard]] std::string idempotency_key(const Message& message) const override {
        return batch_->idempotency_key(message);
    }
    void prepare(Statements& statements) override { batch_->prepare(statements); }
    [[nodiscard]] BatchHandler& batch() noexcept { return *batch_; }

private:
    std::unique_ptr<BatchHandler> batch_;
};

}  // namespace idemq::detail
