// OwnedProperties as JSON and back: the byte-exact export format of the DLQ
// tools (the typed values are described in amqp/value.hpp).
#include "amqp/properties.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>

#include "amqp/dead_letter.hpp"
#include "amqp/value.hpp"
#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {

nlohmann::json to_json(const amqp_table_t& table) { return table_to_json(table); }

nlohmann::json OwnedProperties::to_json() const {
    auto json = nlohmann::json::object();
    for (const auto& p : kBytesProperties) {
        if ((props_._flags & p.flag) != 0) json[p.name] = bytes_to_json(to_string(props_.*p.field));
    }
    if ((props_._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0) json["delivery_mode"] = props_.delivery_mode;
    if ((props_._flags & AMQP_BASIC_PRIORITY_FLAG) != 0) json["priority"] = props_.priority;
    if ((props_._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) json["timestamp"] = props_.timestamp;
    json["headers"] =
        (props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0 ? table_to_json(props_.headers) : nlohmann::json::object();
    return json;
}

namespace {

constexpr std::string_view kKeyPrefix = "$base64:";

// The typed value a one-key object stands for, or nullptr for a table.
const char* typed_kind(const nlohmann::json& json) {
    if (!json.is_object() || json.size() != 1) return nullptr;
    const std::string& key = json.begin().key();
    for (const char* kind : {"$string_base64", "$bytes_base64", "$decimal", "$timestamp", "$too_deep"}) {
        if (key == kind) return kind;
    }
    return nullptr;
}

amqp_decimal_t parse_decimal(const std::string& text) {
    const auto dot = text.find('.');
    std::string digits = dot == std::string::npos ? text : text.substr(0, dot) + text.substr(dot + 1);
    const std::size_t decimals = dot == std::string::npos ? 0 : text.size() - dot - 1;
    const bool digits_only =
        !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits_only || decimals > 255) throw Error(fmt::format("not an AMQP decimal: '{}'", bounded(text, 64)));
    // Leading zeros carry no value: strip them before the range check.
    const auto first = digits.find_first_not_of('0');
    digits = first == std::string::npos ? "0" : digits.substr(first);
    if (digits.size() > 10 || std::stoull(digits) > std::numeric_limits<std::uint32_t>::max()) {
        throw Error(fmt::format("AMQP decimal out of range: '{}'", bounded(text, 64)));
    }
    return amqp_decimal_t{.decimals = static_cast<std::uint8_t>(decimals),
                          .value = static_cast<std::uint32_t>(std::stoull(digits))};
}

}  // namespace

amqp_field_value_t OwnedProperties::field_from_json(const nlohmann::json& json, int depth) {
    // One level more than kMaxFieldDepth: where an export writes {"$too_deep": true}.
    if (depth > kMaxFieldDepth + 1) throw Error(fmt::format("headers nest deeper than {} levels", kMaxFieldDepth));
    amqp_field_value_t value{};
    if (const char* kind = typed_kind(json)) {
        const nlohmann::json& item = json.begin().value();
        const std::string_view name = kind;
        if (name == "$too_deep") {
            value.kind = AMQP_FIELD_KIND_VOID;
        } else if (name == "$timestamp") {
            if (!item.is_number_unsigned()) throw Error("$timestamp wants a non-negative whole number");
            value.kind = AMQP_FIELD_KIND_TIMESTAMP;
            value.value.u64 = item.get<std::uint64_t>();
        } else if (!item.is_string()) {
            throw Error(fmt::format("{} wants a string", name));
        } else if (name == "$decimal") {
            value.kind = AMQP_FIELD_KIND_DECIMAL;
            value.value.decimal = parse_decimal(item.get_ref<const std::string&>());
        } else {
            value.kind = name == "$bytes_base64" ? AMQP_FIELD_KIND_BYTES : AMQP_FIELD_KIND_UTF8;
            value.value.bytes = copy_bytes(base64_decode(item.get_ref<const std::string&>()));
        }
    } else if (json.is_string()) {
        value.kind = AMQP_FIELD_KIND_UTF8;
        value.value.bytes = copy_bytes(json.get_ref<const std::string&>());
    } else if (json.is_boolean()) {
        value.kind = AMQP_FIELD_KIND_BOOLEAN;
        value.value.boolean = json.get<bool>() ? 1 : 0;
    } else if (json.is_number_unsigned() && json.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
        value.kind = AMQP_FIELD_KIND_U64;
        value.value.u64 = json.get<std::uint64_t>();
    } else if (json.is_number_integer()) {
        value.kind = AMQP_FIELD_KIND_I64;
        value.value.i64 = json.get<std::int64_t>();
    } else if (json.is_number_float()) {
        value.kind = AMQP_FIELD_KIND_F64;
        value.value.f64 = json.get<double>();
    } else if (json.is_object()) {
        value.kind = AMQP_FIELD_KIND_TABLE;
        value.value.table = table_from_json(json, depth);
    } else if (json.is_array()) {
        if (json.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("array too long");
        value.kind = AMQP_FIELD_KIND_ARRAY;
        auto* entries = static_cast<amqp_field_value_t*>(
            amqp_pool_alloc(pool_.get(), sizeof(amqp_field_value_t) * std::max<std::size_t>(json.size(), 1)));
        if (entries == nullptr) throw std::bad_alloc();
        int count = 0;
        for (const auto& item : json) entries[count++] = field_from_json(item, depth + 1);
        value.value.array.num_entries = count;
        value.value.array.entries = entries;
    } else {
        value.kind = AMQP_FIELD_KIND_VOID;
    }
    return value;
}

amqp_table_t OwnedProperties::table_from_json(const nlohmann::json& json, int depth) {
    if (json.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("table too long");
    amqp_table_t table{};
    auto* entries = static_cast<amqp_table_entry_t*>(
        amqp_pool_alloc(pool_.get(), sizeof(amqp_table_entry_t) * std::max<std::size_t>(json.size(), 1)));
    if (entries == nullptr) throw std::bad_alloc();
    int count = 0;
    for (const auto& [key, item] : json.items()) {
        const std::string name =
            key.starts_with(kKeyPrefix) ? base64_decode(std::string_view(key).substr(kKeyPrefix.size())) : key;
        if (name.size() > 255) {
            throw Error(fmt::format("header name longer than 255 bytes: '{}...'", bounded(name, 64)));
        }
        entries[count].key = copy_bytes(name);
        entries[count].value = field_from_json(item, depth + 1);
        ++count;
    }
    table.num_entries = count;
    table.entries = entries;
    return table;
}

OwnedProperties OwnedProperties::from_json(const nlohmann::json& json) {
    OwnedProperties out;
    if (!json.is_object()) throw Error("properties must be a JSON object");
    for (const auto& p : kBytesProperties) {
        const auto it = json.find(p.name);
        if (it == json.end()) continue;
        const auto bytes = bytes_from_json(*it);
        if (!bytes) continue;
        if (bytes->size() > 255) throw Error(fmt::format("property {} longer than 255 bytes", p.name));
        out.props_._flags |= p.flag;
        out.props_.*p.field = out.copy_bytes(*bytes);
    }
    if (const auto it = json.find("delivery_mode"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        out.props_.delivery_mode = static_cast<std::uint8_t>(it->get<std::uint64_t>());
    }
    if (const auto it = json.find("priority"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
        out.props_.priority = static_cast<std::uint8_t>(it->get<std::uint64_t>());
    }
    if (const auto it = json.find("timestamp"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        out.props_.timestamp = it->get<std::uint64_t>();
    }
    if (const auto it = json.find("headers"); it != json.end() && it->is_object() && !it->empty()) {
        out.props_._flags |= AMQP_BASIC_HEADERS_FLAG;
        out.props_.headers = out.table_from_json(*it, 0);
    }
    return out;
}

}  // namespace idemq::detail
