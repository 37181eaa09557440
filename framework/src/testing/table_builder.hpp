#pragma once

#include <amqp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "amqp/properties.hpp"

namespace idemq::detail {

// AMQP tables and properties built by hand, as any publisher could send
// them: every string, array and table stays put in the builder until the
// properties have been deep-copied into OwnedProperties.
class TableBuilder final {
public:
    using Entries = std::vector<std::pair<std::string, amqp_field_value_t>>;

    [[nodiscard]] amqp_field_value_t text(std::string bytes) {
        return bytes_value(AMQP_FIELD_KIND_UTF8, std::move(bytes));
    }
    [[nodiscard]] amqp_field_value_t bytes(std::string bytes) {
        return bytes_value(AMQP_FIELD_KIND_BYTES, std::move(bytes));
    }
    [[nodiscard]] amqp_field_value_t array(std::vector<amqp_field_value_t> items) {
        auto& stored = arrays_.emplace_back(std::make_unique<std::vector<amqp_field_value_t>>(std::move(items)));
        amqp_field_value_t value{};
        value.kind = AMQP_FIELD_KIND_ARRAY;
        value.value.array.num_entries = static_cast<int>(stored->size());
        value.value.array.entries = stored->data();
        return value;
    }
    [[nodiscard]] amqp_field_value_t table(Entries entries) {
        amqp_field_value_t value{};
        value.kind = AMQP_FIELD_KIND_TABLE;
        value.value.table = make_table(std::move(entries));
        return value;
    }
    [[nodiscard]] amqp_table_t make_table(Entries entries) {
        auto& stored = tables_.emplace_back(std::make_unique<std::vector<amqp_table_entry_t>>());
        for (auto& [key, value] : entries) {
            amqp_table_entry_t entry{};
            entry.key = keep(std::move(key));
            entry.value = value;
            stored->push_back(entry);
        }
        return amqp_table_t{static_cast<int>(stored->size()), stored->data()};
    }
    // A scalar of `kind`, its value set by `set(amqp_field_value_t&)`.
    template <typename Setter>
    [[nodiscard]] static amqp_field_value_t scalar(std::uint8_t kind, Setter set) {
        amqp_field_value_t value{};
        value.kind = kind;
        set(value);
        return value;
    }
    // Persistent properties with this message id and these headers.
    [[nodiscard]] OwnedProperties properties(const std::string& message_id, Entries headers) {
        amqp_basic_properties_t props{};
        props._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
        props.message_id = keep(message_id);
        props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        props.headers = make_table(std::move(headers));
        return OwnedProperties(props);
    }
    // Bytes kept alive by the builder, e.g. for a property set by hand.
    [[nodiscard]] amqp_bytes_t keep(std::string bytes) {
        auto& stored = strings_.emplace_back(std::make_unique<std::string>(std::move(bytes)));
        return as_amqp_bytes(*stored);
    }

private:
    amqp_field_value_t bytes_value(std::uint8_t kind, std::string bytes) {
        amqp_field_value_t value{};
        value.kind = kind;
        value.value.bytes = keep(std::move(bytes));
        return value;
    }
    std::vector<std::unique_ptr<std::string>> strings_;
    std::vector<std::unique_ptr<std::vector<amqp_field_value_t>>> arrays_;
    std::vector<std::unique_ptr<std::vector<amqp_table_entry_t>>> tables_;
};

}  // namespace idemq::detail
