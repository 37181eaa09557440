#include "core/registered_handler.hpp"

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

}  // namespace idemq::detail
