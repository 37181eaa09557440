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

// Books a charge: a ledger row and an increment of the account's balance.
// To show retries, a charge to an account whose name starts with "flaky"
// fails with a TransientError on its first two attempts.
class ChargeHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override;
};

// The same effect for many charges in one transaction: one multi-row ledger
// insert and one upsert per account (in account order, so concurrent batches
// cannot deadlock on the balances).
class ChargeBatchHandler final : public idemq::BatchHandler {
public:
    void handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                      idemq::BatchContext& ctx) override;
};

// Handler `payments.charge` on queue `payments.charge`, bound to the topic
// exchange `payments` with routing key `charge`.
[[nodiscard]] idemq::Route charge_route();

// The example's own tables (generated from migrations/*.sql).
[[nodiscard]] std::vector<idemq::Migration> migrations();

}  // namespace payments
