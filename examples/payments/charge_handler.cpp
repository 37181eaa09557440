#include "charge_handler.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

namespace payments {
namespace {

constexpr std::size_t kMaxAccountLength = 64;

}  // namespace

Charge parse_charge(std::string_view body) {
    const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) throw idemq::PermanentError("body is not a JSON object");
    const auto account = json.find("account");
    if (account == json.end() || !account->is_string()) throw idemq::PermanentError("'account' is missing or not a string");
    const auto amount = json.find("amount_cents");
    if (amount == json.end() || !amount->is_number_integer()) {
        throw idemq::PermanentError("'amount_cents' is missing or not a whole number");
    }
    Charge charge{account->get<std::string>(), amount->get<std::int64_t>()};
    if (charge.account.empty() || charge.account.size() > kMaxAccountLength) {
        throw idemq::PermanentError("'account' must be 1 to 64 characters");
    }
    if (charge.amount_cents < 0) throw idemq::PermanentError("'amount_cents' must not be negative");
    return charge;
}

void ChargeHandler::handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) {
    const Charge charge = parse_charge(message.body());
    // Shows retries at work: accounts named flaky* fail twice, then succeed.
    if (charge.account.starts_with("flaky") && ctx.attempt() <= 2) {
        throw idemq::TransientError("the payment provider for " + charge.account + " timed out (attempt " +
                                    std::to_string(ctx.attempt()) + ")");
    }
    tx.exec_params("INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ($1, $2, $3)",
                   std::string(message.message_id()), charge.account, charge.amount_cents);
    tx.exec_params("INSERT INTO payments.balances (account, balance_cents) VALUES ($1, $2) "
                   "ON CONFLICT (account) DO UPDATE SET balance_cents = payments.balances.balance_cents + "
                   "EXCLUDED.balance_cents",
                   charge.account, charge.amount_cents);
    ctx.log().debug("charged {} cents to {} on attempt {}", charge.amount_cents, charge.account, ctx.attempt());
}

idemq::Route charge_route() {
    return {.handler = "payments.charge",
            .queue = "payments.charge",
            .exchange = "payments",
            .exchange_type = "topic",
            .routing_keys = {"charge"}};
}

}  // namespace payments
