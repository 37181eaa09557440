#include "amqp/value.hpp"

#include <nlohmann/json.hpp>

#include <string>

#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

constexpr std::string_view kKeyPrefix = "$base64:";

std::string_view view_of(amqp_bytes_t bytes) noexcept {
    if (bytes.len == 0 || bytes.bytes == nullptr) return {};
    return {static_cast<const char*>(bytes.bytes), bytes.len};
}

nlohmann::json typed(const char* kind, nlohmann::json value) {
    auto object = nlohmann::json::object();
    object[kind] = std::move(value);
    return object;
}

std::string key_to_json(std::string_view key) {
    if (is_utf8(key) && !key.starts_with('$')) return std::string(key);
    return std::string(kKeyPrefix) + base64_encode(key);
}

nlohmann::json field_json(const amqp_field_value_t& value, int depth);

nlohmann::json table_json(const amqp_table_t& table, int depth) {
    auto object = nlohmann::json::object();
    for (int i = 0; i < table.num_entries; ++i) {
        object[key_to_json(view_of(table.entries[i].key))] = field_json(table.entries[i].value, depth + 1);
    }
    return object;
}

nlohmann::json field_json(const amqp_field_value_t& value, int depth) {
    if (depth > kMaxFieldDepth) return typed("$too_deep", true);
    switch (value.kind) {
        case AMQP_FIELD_KIND_BOOLEAN: return value.value.boolean != 0;
        case AMQP_FIELD_KIND_I8: return value.value.i8;
        case AMQP_FIELD_KIND_U8: return value.value.u8;
        case AMQP_FIELD_KIND_I16: return value.value.i16;
        case AMQP_FIELD_KIND_U16: return value.value.u16;
        case AMQP_FIELD_KIND_I32: return value.value.i32;
        case AMQP_FIELD_KIND_U32: return value.value.u32;
        case AMQP_FIELD_KIND_I64: return value.value.i64;
        case AMQP_FIELD_KIND_U64: return value.value.u64;
        case AMQP_FIELD_KIND_F32: return value.value.f32;
        case AMQP_FIELD_KIND_F64: return value.value.f64;
        case AMQP_FIELD_KIND_TIMESTAMP: return typed("$timestamp", value.value.u64);
        case AMQP_FIELD_KIND_DECIMAL:
            return typed("$decimal", decimal_text(value.value.decimal.value, value.value.decimal.decimals));
        case AMQP_FIELD_KIND_UTF8: {
            const std::string_view bytes = view_of(value.value.bytes);
            if (is_utf8(bytes)) return std::string(bytes);
            return typed("$string_base64", base64_encode(bytes));
        }
        case AMQP_FIELD_KIND_BYTES: return typed("$bytes_base64", base64_encode(view_of(value.value.bytes)));
        case AMQP_FIELD_KIND_ARRAY: {
            auto array = nlohmann::json::array();
            for (int i = 0; i < value.value.array.num_entries; ++i) {
                array.push_back(field_json(value.value.array.entries[i], depth + 1));
            }
            return array;
        }
        case AMQP_FIELD_KIND_TABLE: return table_json(value.value.table, depth);
        default: return nullptr;
    }
}

std::optional<std::size_t> scalar_size(std::uint8_t kind) {
    switch (kind) {
        case AMQP_FIELD_KIND_VOID: return 0;
        case AMQP_FIELD_KIND_BOOLEAN:
        case AMQP_FIELD_KIND_I8:
        case AMQP_FIELD_KIND_U8: return 1;
        case AMQP_FIELD_KIND_I16:
        case AMQP_FIELD_KIND_U16: return 2;
        case AMQP_FIELD_KIND_I32:
        case AMQP_FIELD_KIND_U32:
        case AMQP_FIELD_KIND_F32: return 4;
        case AMQP_FIELD_KIND_DECIMAL: return 5;
        case AMQP_FIELD_KIND_I64:
        case AMQP_FIELD_KIND_U64:
        case AMQP_FIELD_KIND_F64:
        case AMQP_FIELD_KIND_TIMESTAMP: return 8;
        default: return std::nullopt;
    }
}

}  // namespace

std::string decimal_text(std::uint32_t value, std::uint8_t decimals) {
    std::string digits = std::to_string(value);
    if (decimals == 0) return digits;
    if (digits.size() <= decimals) digits.insert(0, decimals + 1 - digits.size(), '0');
    digits.insert(digits.size() - decimals, 1, '.');
    return digits;
}

nlohmann::json field_to_json(const amqp_field_value_t& value) { return field_json(value, 0); }

nlohmann::json table_to_json(const amqp_table_t& table) { return table_json(table, 0); }

std::string field_to_text(const amqp_field_value_t& value) {
    switch (value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES: return std::string(view_of(value.value.bytes));
        case AMQP_FIELD_KIND_DECIMAL: return decimal_text(value.value.decimal.value, value.value.decimal.decimals);
        case AMQP_FIELD_KIND_TIMESTAMP: return std::to_string(value.value.u64);
        default:
            // Every string in the JSON form is UTF-8, so dump cannot throw;
            // `replace` is the second line of defence.
            return field_to_json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
}

nlohmann::json bytes_to_json(std::string_view bytes) {
    if (is_utf8(bytes)) return std::string(bytes);
    return typed("$string_base64", base64_encode(bytes));
}

std::optional<std::string> bytes_from_json(const nlohmann::json& json) {
    if (json.is_string()) return json.get<std::string>();
    if (json.is_object() && json.size() == 1) {
        const auto it = json.find("$string_base64");
        if (it != json.end() && it->is_string()) return base64_decode(it->get_ref<const std::string&>());
    }
    return std::nullopt;
}

std::optional<std::size_t> encoded_size(const amqp_table_t& table, int depth) {
    if (depth > kMaxFieldDepth || table.num_entries < 0) return std::nullopt;
    std::size_t total = 4;
    for (int i = 0; i < table.num_entries; ++i) {
        const amqp_table_entry_t& entry = table.entries[i];
        if (entry.key.len > 255) return std::nullopt;
        const auto value = encoded_size(entry.value, depth + 1);
        if (!value) return std::nullopt;
        total += 1 + entry.key.len + *value;
    }
    return total;
}

std::optional<std::size_t> encoded_size(const amqp_field_value_t& value, int depth) {
    if (depth > kMaxFieldDepth) return std::nullopt;
    switch (value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES: return 1 + 4 + value.value.bytes.len;
        case AMQP_FIELD_KIND_ARRAY: {
            if (value.value.array.num_entries < 0) return std::nullopt;
            std::size_t total = 1 + 4;
            for (int i = 0; i < value.value.array.num_entries; ++i) {
                const auto item = encoded_size(value.value.array.entries[i], depth + 1);
                if (!item) return std::nullopt;
                total += *item;
            }
            return total;
        }
        case AMQP_FIELD_KIND_TABLE: {
            const auto table = encoded_size(value.value.table, depth);
            if (!table) return std::nullopt;
            return 1 + *table;
        }
        default: {
            const auto size = scalar_size(value.kind);
            if (!size) return std::nullopt;
            return 1 + *size;
        }
    }
}

}  // namespace idemq::detail
