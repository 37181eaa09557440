#include "core/registered_handler.hpp"

#include <algorithm>
#include <span>

namespace idemq::detail {

void SingleMessageBatch::handle(const Message& message, pqxx::transaction_base& tx, Context& ctx) {
    struct Single final : BatchContext {
        explicit Single(Context& ctx) : ctx_(ctx) {}
        [[nodiscard]] std::string_view handler_name() const noexcept override { return ctx_.handler_name(); }
        [[nodiscard]] Logger& log() noexcept override { return ctx_.log(); }
        // The one message is the one the Context was made for.
        [[nodiscard]] Outbox& outbox(const Message&) override { return ctx_.outbox(); }
        Context& ctx_;
    } single(ctx);
    batch_->handle_batch(std::span<const Message>(&message, 1), tx, single);
}

std::vector<HandlerStatement> handler_statements(const std::vector<RegisteredHandler>& handlers) {
    std::vector<HandlerStatement> out;
    for (const auto& registered : handlers) {
        for (const auto& definition : registered.statements.definitions()) {
            // add_handler refused the same name with other SQL.
            const bool known = std::any_of(out.begin(), out.end(), [&](const HandlerStatement& statement) {
                return statement.definition.name == definition.name;
            });
            if (!known) out.push_back({registered.route.handler, definition});
        }
    }
    return out;
}

}  // namespace idemq::detail
