#include "charge_handler.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

#include <map>
#include <vector>

namespace payments {
namespace {

constexpr std::size_t kMaxAccountLength = 64;

// The statements' names: the handlers' own, shared by every handler of a
// worker, so each starts with the example's name.
constexpr const char* kBookLedger = "payments_book_ledger";
constexpr const char* kBookBalance = "payments_book_balance";
constexpr const char* kBookLedgers = "payments_book_ledgers";
constexpr const char* kBookBalances = "payments_book_balances";
constexpr const char* kNotify = "payments_notify";

// A text parameter ends at its first NUL byte (libpq sends C strings), as a
// quoted literal did before: the batch cuts there too, so it books exactly
// what the one-message path books.
std::string_view up_to_nul(std::string_view text) { return text.substr(0, text.find('\0')); }

// A Postgres text[] literal, each element quoted: `$n::text[]` takes any
// number of values in one parameter, so one prepared statement fits every
// batch size.
std::string text_array(const std::vector<std::string_view>& values) {
    std::string out = "{";
    for (const auto value : values) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (const char c : up_to_nul(value)) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string bigint_array(const std::vector<std::int64_t>& values) {
    std::string out = "{";
    for (const auto value : values) out += fmt::format("{}{}", out.size() > 1 ? "," : "", value);
    return out + "}";
}

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

void ChargeHandler::prepare(idemq::Statements& statements) {
    statements.add(kBookLedger, "INSERT INTO payments.ledger (message_id, account, amount_cents) VALUES ($1, $2, $3)");
    statements.add(kBookBalance,
                   "INSERT INTO payments.balances (account, balance_cents) VALUES ($1, $2) "
                   "ON CONFLICT (account) DO UPDATE SET balance_cents = payments.balances.balance_cents + "
                   "EXCLUDED.balance_cents");
}

void ChargeHandler::handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) {
    const Charge charge = parse_charge(message.body());
    fail_if_flaky(charge, ctx.attempt());
    tx.exec_prepared(kBookLedger, std::string(message.message_id()), charge.account, charge.amount_cents);
    tx.exec_prepared(kBookBalance, charge.account, charge.amount_cents);
    if (events_ == Events::kStaged) ctx.outbox().publish(charged_event(message, charge));
    ctx.log().debug("charged {} cents to {} on attempt {}", charge.amount_cents, charge.account, ctx.attempt());
}

void ChargeBatchHandler::prepare(idemq::Statements& statements) {
    statements.add(kBookLedgers,
                   "INSERT INTO payments.ledger (message_id, account, amount_cents) "
                   "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])");
    // In the order given (account order): concurrent batches lock the
    // balances in one order, so they cannot deadlock.
    statements.add(kBookBalances,
                   "INSERT INTO payments.balances (account, balance_cents) "
                   "SELECT a, c FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS t(a, c, n) ORDER BY n "
                   "ON CONFLICT (account) DO UPDATE SET balance_cents = payments.balances.balance_cents + "
                   "EXCLUDED.balance_cents");
}

void ChargeBatchHandler::handle_batch(std::span<const idemq::Message> messages, pqxx::transaction_base& tx,
                                      idemq::BatchContext& ctx) {
    std::vector<Charge> charges;
    charges.reserve(messages.size());
    std::vector<std::string_view> ids;
    std::vector<std::string_view> accounts;
    std::vector<std::int64_t> amounts;
    std::map<std::string, std::int64_t, std::less<>> per_account;
    for (const auto& message : messages) {
        const Charge& charge = charges.emplace_back(parse_charge(message.body()));
        fail_if_flaky(charge, message.attempt());
        ids.push_back(message.message_id());
        accounts.push_back(charge.account);
        amounts.push_back(charge.amount_cents);
        per_account[std::string(up_to_nul(charge.account))] += charge.amount_cents;
        if (events_ == Events::kStaged) ctx.outbox(message).publish(charged_event(message, charge));
    }
    std::vector<std::string_view> balance_accounts;
    std::vector<std::int64_t> balance_cents;
    for (const auto& [account, cents] : per_account) {
        balance_accounts.push_back(account);
        balance_cents.push_back(cents);
    }
    tx.exec_prepared(kBookLedgers, text_array(ids), text_array(accounts), bigint_array(amounts));
    tx.exec_prepared(kBookBalances, text_array(balance_accounts), bigint_array(balance_cents));
    ctx.log().debug("charged {} messages to {} accounts", messages.size(), per_account.size());
}

idemq::Route charge_route() {
    return {.handler = "payments.charge",
            .queue = "payments.charge",
            .exchange = "payments",
            .exchange_type = idemq::ExchangeType::kTopic,
            .routing_keys = {"charge"}};
}

void NotifyHandler::prepare(idemq::Statements& statements) {
    statements.add(kNotify,
                   "INSERT INTO payments.notifications (charge_id, account, amount_cents) VALUES ($1, $2, $3)");
}

void NotifyHandler::handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context&) {
    const auto event = nlohmann::json::parse(message.body(), nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object() || !event.contains("charge_id") || !event["charge_id"].is_string() ||
        !event.contains("account") || !event["account"].is_string() || !event.contains("amount_cents") ||
        !event["amount_cents"].is_number_integer()) {
        throw idemq::PermanentError("not a charged event: charge_id, account and amount_cents are required");
    }
    tx.exec_prepared(kNotify, event["charge_id"].get<std::string>(), event["account"].get<std::string>(),
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
