#include "outbox/staging.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/binarystring>

#include "amqp/properties.hpp"
#include "common/fingerprint.hpp"
#include "common/uuid.hpp"
#include "outbox/outbox_sql.hpp"

namespace idemq::detail {
namespace {

// AMQP short strings: exchange, routing key and the id properties.
constexpr std::size_t kMaxShortString = 255;

pqxx::binarystring bytes(std::string_view value) { return pqxx::binarystring(value.data(), value.size()); }

void check_short(std::string_view what, std::string_view value) {
    if (value.size() > kMaxShortString) {
        throw PermanentError(fmt::format("an outgoing message's {} is {} bytes long; AMQP allows at most {}", what,
                                         value.size(), kMaxShortString));
    }
}

// What the relay publishes, as the row stores it.
struct Row {
    OutgoingMessage message;
    std::string properties_json;
};

Row row_for(OutgoingMessage message) {
    HeaderList headers;
    headers.reserve(message.headers.size());
    for (const auto& [name, value] : message.headers) headers.emplace_back(name, value);
    const OwnedProperties properties =
        OwnedProperties::make(message.message_id, message.correlation_id, message.content_type, headers);
    const auto size = properties.encoded_size();
    if (!size || *size > kDefaultRepublishBudget) {
        throw PermanentError(
            fmt::format("an outgoing message's properties and headers take {} bytes; at most {} fit "
                        "in a frame",
                        size ? std::to_string(*size) : std::string("too many"), kDefaultRepublishBudget));
    }
    return {std::move(message), properties.to_json().dump()};
}

template <class Exec>
void insert(const Row& row, std::string_view staged_by, const Exec& exec) {
    const OutgoingMessage& m = row.message;
    exec(bytes(m.ordering_key), bytes(m.exchange), bytes(m.routing_key), bytes(m.message_id), row.properties_json,
         bytes(m.body), std::string(staged_by));
}

}  // namespace

std::string derived_message_id(std::string_view handler, std::string_view key, std::size_t index) {
    // Lengths first: no other handler/key split of the same bytes hashes alike.
    return uuid_from_digest(
        sha256(fmt::format("idemq-outbox:{}:{}:{}:{}:{}", handler.size(), handler, key.size(), key, index)));
}

OutgoingMessage completed(OutgoingMessage message, const StagedFrom* from, std::size_t index) {
    if (message.message_id.empty()) {
        message.message_id =
            from != nullptr ? derived_message_id(from->handler, from->idempotency_key, index) : random_uuid();
    }
    if (from != nullptr) {
        if (message.correlation_id.empty()) message.correlation_id = std::string(from->correlation_id);
        if (from->message != nullptr) {
            for (const char* name : {"traceparent", "tracestate"}) {
                const auto value = from->message->header(name);
                if (value && !message.headers.contains(name)) message.headers.emplace(name, std::string(*value));
            }
        }
    }
    check_short("exchange", message.exchange);
    check_short("routing key", message.routing_key);
    check_short("message id", message.message_id);
    check_short("correlation id", message.correlation_id);
    check_short("content type", message.content_type);
    return message;
}

void HandlerOutbox::publish(OutgoingMessage message) {
    const Row row = row_for(completed(std::move(message), &from_, staged_++));
    insert(row, from_.handler,
           [this](auto&&... params) { tx_.exec_prepared(kStageStatement, std::forward<decltype(params)>(params)...); });
}

}  // namespace idemq::detail

namespace idemq::outbox {

void stage(pqxx::transaction_base& tx, OutgoingMessage message, std::string_view schema) {
    const detail::Row row = detail::row_for(detail::completed(std::move(message), nullptr, 0));
    const std::string sql = detail::stage_sql(schema);
    detail::insert(row, "", [&](auto&&... params) { tx.exec_params(sql, std::forward<decltype(params)>(params)...); });
}

void wake_relay(pqxx::transaction_base& tx) {
    tx.exec_params("SELECT pg_notify($1, '')", std::string(detail::kOutboxChannel));
}

}  // namespace idemq::outbox
