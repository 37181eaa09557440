#pragma once

#include <idemq/idemq.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace payments {

// One charge: {"account": "A1", "amount_cents": 1250}.
struct Charge {
    std::string account;
    std::int64_t amount_cents = 0;
};

// Throws idemq::PermanentError for invalid JSON, missing or mistyped fields,
// an empty or overlong account, or a negative amount.
[[nodiscard]] Charge parse_charge(std::string_view body);

// Whether a booked charge tells the world: kStaged stages a "charged" event
// in the outbox (the example); kNone books only (the benchmark, which
// compares the booking with hand-written consumers that send nothing on).
enum class Events { kStaged, kNone };

// The "charged" event of a booked charge, for exchange payments.events:
// {"charge_id": "<the charge's message id>", "account": ..., "amount_cents": N}.
[[nodiscard]] idemq::OutgoingMessage charged_event(const idemq::Message& charge_message, const Charge& charge);

// Books a charge: a ledger row and an increment of the account's balance,
// and stages its "charged" event in the same transaction.
// To show retries, a charge to an account whose name starts with "flaky"
// fails with a TransientError on its first two attempts.
class ChargeHandler final : public idemq::Handler {
public:
    explicit ChargeHandler(Events events = Events::kStaged) : events_(events) {}
    void prepare(idemq::Statements& statements) override;
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override;

private:
    Events events_;
};

// The same effect for many charges in one transaction: one multi-row ledger
// insert and one upsert per account (in account order, so concurrent batches
// cannot deadlock on the balances), and one event per charge.
class ChargeBatchHandler final : public idemq::BatchHandler {
public:
    explicit ChargeBatchHandler(Events events = Events::kStaged) : events_(events) {}
    void prepare(idemq::Statements& statements) override;
    void handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                      idemq::BatchContext& ctx) override;

private:
    Events events_;
};

// Turns "charged" events into payments.notifications rows: the receiving end
// of the outbox chain, effectively once through its own inbox (the event's
// message id, derived when it was staged, is the same on every copy).
class NotifyHandler final : public idemq::Handler {
public:
    void prepare(idemq::Statements& statements) override;
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override;
};

// Handler `payments.charge` on queue `payments.charge`, bound to the topic
// exchange `payments` with routing key `charge`.
[[nodiscard]] idemq::Route charge_route();

// Handler `payments.notify` on queue `payments.notify`, bound to the topic
// exchange `payments.events` (declared by it) with routing key `charged`.
[[nodiscard]] idemq::Route notify_route();

// The example's own tables (generated from migrations/*.sql).
[[nodiscard]] std::vector<idemq::Migration> migrations();

}  // namespace payments
