#include "amqp_properties.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

namespace idemq::detail {
namespace {

constexpr std::size_t kPoolPageSize = 4096;

}  // namespace

nlohmann::json to_json(const amqp_field_value_t& value);

nlohmann::json to_json(const amqp_table_t& table) {
    auto object = nlohmann::json::object();
    for (int i = 0; i < table.num_entries; ++i) {
        object[to_string(table.entries[i].key)] = to_json(table.entries[i].value);
    }
    return object;
}

nlohmann::json to_json(const amqp_field_value_t& value) {
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
        case AMQP_FIELD_KIND_TIMESTAMP: return value.value.u64;
        case AMQP_FIELD_KIND_F32: return value.value.f32;
        case AMQP_FIELD_KIND_F64: return value.value.f64;
        case AMQP_FIELD_KIND_DECIMAL: {
            double scaled = value.value.decimal.value;
            for (int i = 0; i < value.value.decimal.decimals; ++i) scaled /= 10;
            return scaled;
        }
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES: return to_string(value.value.bytes);
        case AMQP_FIELD_KIND_ARRAY: {
            auto array = nlohmann::json::array();
            for (int i = 0; i < value.value.array.num_entries; ++i) array.push_back(to_json(value.value.array.entries[i]));
            return array;
        }
        case AMQP_FIELD_KIND_TABLE: return to_json(value.value.table);
        case AMQP_FIELD_KIND_VOID: return nullptr;
        default: return nullptr;
    }
}

namespace {

std::optional<std::int64_t> as_integer(const amqp_field_value_t& value) {
    switch (value.kind) {
        case AMQP_FIELD_KIND_I8: return value.value.i8;
        case AMQP_FIELD_KIND_U8: return value.value.u8;
        case AMQP_FIELD_KIND_I16: return value.value.i16;
        case AMQP_FIELD_KIND_U16: return value.value.u16;
        case AMQP_FIELD_KIND_I32: return value.value.i32;
        case AMQP_FIELD_KIND_U32: return value.value.u32;
        case AMQP_FIELD_KIND_I64: return value.value.i64;
        case AMQP_FIELD_KIND_U64:
            if (value.value.u64 > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
            return static_cast<std::int64_t>(value.value.u64);
        default: return std::nullopt;
    }
}

std::string bytes_property(const amqp_basic_properties_t& props, amqp_flags_t flag, amqp_bytes_t bytes) {
    return (props._flags & flag) != 0 ? to_string(bytes) : std::string();
}

}  // namespace

amqp_bytes_t as_amqp_bytes(std::string_view text) noexcept {
    amqp_bytes_t bytes;
    bytes.len = text.size();
    bytes.bytes = const_cast<char*>(text.data());  // rabbitmq-c takes non-const pointers it only reads
    return bytes;
}

std::string to_string(amqp_bytes_t bytes) {
    if (bytes.len == 0) return {};
    return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

void OwnedProperties::PoolDeleter::operator()(amqp_pool_t* pool) const noexcept {
    empty_amqp_pool(pool);
    delete pool;
}

OwnedProperties::OwnedProperties() : pool_(new amqp_pool_t) { init_amqp_pool(pool_.get(), kPoolPageSize); }

OwnedProperties::OwnedProperties(const amqp_basic_properties_t& source) : OwnedProperties() {
    props_ = source;
    const auto copy_if = [&](amqp_flags_t flag, amqp_bytes_t& field) {
        if ((props_._flags & flag) != 0) field = copy_bytes(to_string(field));
    };
    copy_if(AMQP_BASIC_CONTENT_TYPE_FLAG, props_.content_type);
    copy_if(AMQP_BASIC_CONTENT_ENCODING_FLAG, props_.content_encoding);
    copy_if(AMQP_BASIC_CORRELATION_ID_FLAG, props_.correlation_id);
    copy_if(AMQP_BASIC_REPLY_TO_FLAG, props_.reply_to);
    copy_if(AMQP_BASIC_EXPIRATION_FLAG, props_.expiration);
    copy_if(AMQP_BASIC_MESSAGE_ID_FLAG, props_.message_id);
    copy_if(AMQP_BASIC_TYPE_FLAG, props_.type);
    copy_if(AMQP_BASIC_USER_ID_FLAG, props_.user_id);
    copy_if(AMQP_BASIC_APP_ID_FLAG, props_.app_id);
    copy_if(AMQP_BASIC_CLUSTER_ID_FLAG, props_.cluster_id);
    if ((props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        amqp_table_t clone{};
        if (amqp_table_clone(&source.headers, &clone, pool_.get()) != AMQP_STATUS_OK) throw std::bad_alloc();
        props_.headers = clone;
    } else {
        props_.headers = amqp_table_t{};
    }
}

amqp_bytes_t OwnedProperties::copy_bytes(std::string_view bytes) {
    amqp_bytes_t out{};
    if (bytes.empty()) return out;
    amqp_pool_alloc_bytes(pool_.get(), bytes.size(), &out);
    if (out.bytes == nullptr) throw std::bad_alloc();
    std::memcpy(out.bytes, bytes.data(), bytes.size());
    return out;
}

std::string OwnedProperties::message_id() const {
    return bytes_property(props_, AMQP_BASIC_MESSAGE_ID_FLAG, props_.message_id);
}
std::string OwnedProperties::correlation_id() const {
    return bytes_property(props_, AMQP_BASIC_CORRELATION_ID_FLAG, props_.correlation_id);
}
std::string OwnedProperties::content_type() const {
    return bytes_property(props_, AMQP_BASIC_CONTENT_TYPE_FLAG, props_.content_type);
}

std::optional<std::int64_t> OwnedProperties::int_header(std::string_view name) const {
    if ((props_._flags & AMQP_BASIC_HEADERS_FLAG) == 0) return std::nullopt;
    for (int i = 0; i < props_.headers.num_entries; ++i) {
        const auto& entry = props_.headers.entries[i];
        if (to_string(entry.key) == name) return as_integer(entry.value);
    }
    return std::nullopt;
}

Headers OwnedProperties::headers_as_text() const {
    Headers out;
    if ((props_._flags & AMQP_BASIC_HEADERS_FLAG) == 0) return out;
    for (int i = 0; i < props_.headers.num_entries; ++i) {
        const auto& entry = props_.headers.entries[i];
        const auto kind = entry.value.kind;
        std::string text = (kind == AMQP_FIELD_KIND_UTF8 || kind == AMQP_FIELD_KIND_BYTES)
                               ? to_string(entry.value.value.bytes)
                               : detail::to_json(entry.value).dump();
        out.insert_or_assign(to_string(entry.key), std::move(text));
    }
    return out;
}

OwnedProperties OwnedProperties::with_headers(const HeaderList& headers, std::string_view drop_prefix) const {
    OwnedProperties out(props_);
    const amqp_table_t& old = out.props_.headers;
    const bool had_headers = (props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0;
    const int old_count = had_headers ? old.num_entries : 0;

    auto* entries = static_cast<amqp_table_entry_t*>(
        amqp_pool_alloc(out.pool_.get(), sizeof(amqp_table_entry_t) * (static_cast<std::size_t>(old_count) + headers.size())));
    if (entries == nullptr) throw std::bad_alloc();
    int count = 0;
    for (int i = 0; i < old_count; ++i) {
        const std::string key = to_string(old.entries[i].key);
        const bool replaced = std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == key; });
        const bool dropped = !drop_prefix.empty() && key.starts_with(drop_prefix);
        if (!replaced && !dropped) entries[count++] = old.entries[i];
    }
    for (const auto& [key, value] : headers) {
        amqp_table_entry_t& entry = entries[count++];
        entry.key = out.copy_bytes(key);
        if (const auto* text = std::get_if<std::string>(&value)) {
            entry.value.kind = AMQP_FIELD_KIND_UTF8;
            entry.value.value.bytes = out.copy_bytes(*text);
        } else {
            entry.value.kind = AMQP_FIELD_KIND_I64;
            entry.value.value.i64 = std::get<std::int64_t>(value);
        }
    }
    out.props_.headers.entries = entries;
    out.props_.headers.num_entries = count;
    out.props_._flags |= AMQP_BASIC_HEADERS_FLAG;
    return out;
}

OwnedProperties OwnedProperties::for_republish(HeaderList headers) const {
    if ((props_._flags & AMQP_BASIC_EXPIRATION_FLAG) != 0) {
        headers.emplace_back("x-idemq-original-expiration", to_string(props_.expiration));
    }
    if ((props_._flags & AMQP_BASIC_USER_ID_FLAG) != 0) {
        headers.emplace_back("x-idemq-original-user-id", to_string(props_.user_id));
    }
    OwnedProperties out = with_headers(headers);
    out.props_._flags &= ~static_cast<amqp_flags_t>(AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_USER_ID_FLAG);
    out.props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    out.props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    return out;
}

namespace {

struct BytesProperty {
    const char* name;
    amqp_flags_t flag;
    amqp_bytes_t amqp_basic_properties_t::*field;
};

constexpr BytesProperty kBytesProperties[] = {
    {"content_type", AMQP_BASIC_CONTENT_TYPE_FLAG, &amqp_basic_properties_t::content_type},
    {"content_encoding", AMQP_BASIC_CONTENT_ENCODING_FLAG, &amqp_basic_properties_t::content_encoding},
    {"correlation_id", AMQP_BASIC_CORRELATION_ID_FLAG, &amqp_basic_properties_t::correlation_id},
    {"reply_to", AMQP_BASIC_REPLY_TO_FLAG, &amqp_basic_properties_t::reply_to},
    {"expiration", AMQP_BASIC_EXPIRATION_FLAG, &amqp_basic_properties_t::expiration},
    {"message_id", AMQP_BASIC_MESSAGE_ID_FLAG, &amqp_basic_properties_t::message_id},
    {"type", AMQP_BASIC_TYPE_FLAG, &amqp_basic_properties_t::type},
    {"user_id", AMQP_BASIC_USER_ID_FLAG, &amqp_basic_properties_t::user_id},
    {"app_id", AMQP_BASIC_APP_ID_FLAG, &amqp_basic_properties_t::app_id},
    {"cluster_id", AMQP_BASIC_CLUSTER_ID_FLAG, &amqp_basic_properties_t::cluster_id},
};

}  // namespace

nlohmann::json OwnedProperties::to_json() const {
    auto json = nlohmann::json::object();
    for (const auto& p : kBytesProperties) {
        if ((props_._flags & p.flag) != 0) json[p.name] = to_string(props_.*p.field);
    }
    if ((props_._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0) json["delivery_mode"] = props_.delivery_mode;
    if ((props_._flags & AMQP_BASIC_PRIORITY_FLAG) != 0) json["priority"] = props_.priority;
    if ((props_._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) json["timestamp"] = props_.timestamp;
    json["headers"] = (props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0 ? detail::to_json(props_.headers)
                                                                      : nlohmann::json::object();
    return json;
}

amqp_field_value_t OwnedProperties::field_from_json(const nlohmann::json& json) {
    amqp_field_value_t value{};
    if (json.is_string()) {
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
        value.value.table = table_from_json(json);
    } else if (json.is_array()) {
        value.kind = AMQP_FIELD_KIND_ARRAY;
        auto* entries = static_cast<amqp_field_value_t*>(
            amqp_pool_alloc(pool_.get(), sizeof(amqp_field_value_t) * std::max<std::size_t>(json.size(), 1)));
        if (entries == nullptr) throw std::bad_alloc();
        int count = 0;
        for (const auto& item : json) entries[count++] = field_from_json(item);
        value.value.array.num_entries = count;
        value.value.array.entries = entries;
    } else {
        value.kind = AMQP_FIELD_KIND_VOID;
    }
    return value;
}

amqp_table_t OwnedProperties::table_from_json(const nlohmann::json& json) {
    amqp_table_t table{};
    auto* entries = static_cast<amqp_table_entry_t*>(
        amqp_pool_alloc(pool_.get(), sizeof(amqp_table_entry_t) * std::max<std::size_t>(json.size(), 1)));
    if (entries == nullptr) throw std::bad_alloc();
    int count = 0;
    for (const auto& [key, item] : json.items()) {
        entries[count].key = copy_bytes(key);
        entries[count].value = field_from_json(item);
        ++count;
    }
    table.num_entries = count;
    table.entries = entries;
    return table;
}

OwnedProperties OwnedProperties::from_json(const nlohmann::json& json) {
    OwnedProperties out;
    for (const auto& p : kBytesProperties) {
        const auto it = json.find(p.name);
        if (it == json.end() || !it->is_string()) continue;
        out.props_._flags |= p.flag;
        out.props_.*p.field = out.copy_bytes(it->get_ref<const std::string&>());
    }
    if (const auto it = json.find("delivery_mode"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        out.props_.delivery_mode = it->get<std::uint8_t>();
    }
    if (const auto it = json.find("priority"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
        out.props_.priority = it->get<std::uint8_t>();
    }
    if (const auto it = json.find("timestamp"); it != json.end() && it->is_number_unsigned()) {
        out.props_._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        out.props_.timestamp = it->get<std::uint64_t>();
    }
    if (const auto it = json.find("headers"); it != json.end() && it->is_object() && !it->empty()) {
        out.props_._flags |= AMQP_BASIC_HEADERS_FLAG;
        out.props_.headers = out.table_from_json(*it);
    }
    return out;
}

OwnedProperties OwnedProperties::make(std::string_view message_id, std::string_view correlation_id,
                                      std::string_view content_type, const HeaderList& headers) {
    OwnedProperties base;
    base.props_._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    base.props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (!message_id.empty()) {
        base.props_._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        base.props_.message_id = base.copy_bytes(message_id);
    }
    if (!correlation_id.empty()) {
        base.props_._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        base.props_.correlation_id = base.copy_bytes(correlation_id);
    }
    if (!content_type.empty()) {
        base.props_._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        base.props_.content_type = base.copy_bytes(content_type);
    }
    if (headers.empty()) return base;
    return base.with_headers(headers);
}

}  // namespace idemq::detail
