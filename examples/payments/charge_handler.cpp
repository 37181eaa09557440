#include "charge_handler.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

#include <map>

namespace payments {
namespace {

constexpr std::size_t kMaxAccountLength = 64;

// Shows retries at work: accounts named flaky* fail twice, then succeed.
void fail_if_flaky(const Charge& charge, int attempt) {
    if (charge.account.starts_with("flaky") && attempt <= 2) {
        throw idemq::TransientError("the payment provider for " + charge.account + " timed out (attempt " +
                                    std::to_string(attempt) + ")");
    }
}

}  // namespace

idemq::OutgoingMessage charged_event(const idemq::Message& charge_message, const Charge& charge) {
    const nlohmann::json event{{"charge_id", std::string(charge_message.message_id())},
                               {"account", charge.account},
                               {"amount_cents", charge.amount_cents}};
    return {.exchange = "payments.events",
            .routing_key = "charged",
            .body = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            .content_type = "application/json"};
}

Charge parse_charge(std::string_view body) {
    const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) throw idemq::PermanentError("body is not a JSON object");
    const auto account = json.find("account");
    if (account == json.end() || !account->is_string())
        throw idemq::PermanentError("'account' is missing or not a string");
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
    fail_if_flaky(charge, ctx.attempt());
    tx.exec_params("INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ($1, $2, $3)",
                   std::string(message.message_id()), charge.account, charge.amount_cents);
    tx.exec_params(
        "INSERT INTO payments.balances (account, balance_cents) VALUES ($1, $2) "
        "ON CONFLICT (account) DO UPDATE SET balance_cents = payments.balances.balance_cents + "
        "EXCLUDED.balance_cents",
        charge.account, charge.amount_cents);
    if (events_ == Events::kStaged) ctx.outbox().publish(charged_event(message, charge));
    ctx.log().debug("charged {} cents to {} on attempt {}", charge.amount_cents, charge.account, ctx.attempt());
}

void ChargeBatchHandler::handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                                      idemq::BatchContext& ctx) {
    std::string ledger = "INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ";
    std::map<std::string, std::int64_t> per_account;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const Charge charge = parse_charge(messages[i].body());
        fail_if_flaky(charge, messages[i].attempt());
        ledger += fmt::format("{}({}, {}, {})", i == 0 ? "" : ", ", tx.quote(std::string(messages[i].message_id())),
                              tx.quote(charge.account), charge.amount_cents);
        per_account[charge.account] += charge.amount_cents;
        if (events_ == Events::kStaged) ctx.outbox(messages[i]).publish(charged_event(messages[i], charge));
    }
    std::string balances = "INSERT INTO payments.balances (account, balance_cents) VALUES ";
    bool first = true;
    for (const auto& [account, cents] : per_account) {
        balances += fmt::format("{}({}, {})", first ? "" : ", ", tx.quote(account), cents);
        first = false;
    }
    balances +=
        " ON CONFLICT (account) DO UPDATE SET balance_cents = payments.balances.balance_cents + "
        "EXCLUDED.balance_cents";
    tx.exec(ledger);
    tx.exec(balances);
    ctx.log().debug("charged {} messages to {} accounts", messages.size(), per_account.size());
}

idemq::Route charge_route() {
    return {.handler = "payments.charge",
            .queue = "payments.charge",
            .exchange = "payments",
            .exchange_type = idemq::ExchangeType::kTopic,
            .routing_keys = {"charge"}};
}

void NotifyHandler::handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context&) {
    const auto event = nlohmann::json::parse(message.body(), nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object() || !event.contains("charge_id") || !event["charge_id"].is_string() ||
        !event.contains("account") || !event["account"].is_string() || !event.contains("amount_cents") ||
        !event["amount_cents"].is_number_integer()) {
        throw idemq::PermanentError("not a charged event: charge_id, account and amount_cents are required");
    }
    tx.exec_params("INSERT INTO payments.notifications (charge_id, account, amount_cents) VALUES ($1, $2, $3)",
                   event["charge_id"].get<std::string>(), event["account"].get<std::string>(),
                   event["amount_cents"].get<std::int64_t>());
}

idemq::Route notify_route() {
    return {.handler = "payments.notify",
            .queue = "payments.notify",
            .exchange = "payments.events",
            .exchange_type = idemq::ExchangeType::kTopic,
            .routing_keys = {"charged"}};
}

}  // namespace payments
