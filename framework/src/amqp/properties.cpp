#include "amqp/properties.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "amqp/dead_letter.hpp"
#include "amqp/value.hpp"
#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

constexpr std::size_t kPoolPageSize = 4096;

}  // namespace

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
    // A publisher may set flag bits no property stands for (rabbitmq-c
    // decodes continuation words into them); a copy must not carry them, or
    // its encoding grows by a flag word encoded_size() does not count.
    constexpr amqp_flags_t kKnown =
        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
        AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
        AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
        AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG;
    props_._flags &= kKnown;
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
        // Not amqp_table_clone: it fails on values it could itself decode
        // (an empty array, an empty byte string), and every decodable table
        // must be copyable.
        props_.headers = clone_table(source.headers, 0);
    } else {
        props_.headers = amqp_table_t{};
    }
}

amqp_table_t OwnedProperties::clone_table(const amqp_table_t& table, int depth) {
    amqp_table_t out{};
    if (table.num_entries <= 0 || table.entries == nullptr) return out;
    auto* entries = static_cast<amqp_table_entry_t*>(
        amqp_pool_alloc(pool_.get(), sizeof(amqp_table_entry_t) * static_cast<std::size_t>(table.num_entries)));
    if (entries == nullptr) throw std::bad_alloc();
    for (int i = 0; i < table.num_entries; ++i) {
        entries[i].key = copy_bytes(to_string(table.entries[i].key));
        entries[i].value = clone_value(table.entries[i].value, depth + 1);
    }
    out.num_entries = table.num_entries;
    out.entries = entries;
    return out;
}

amqp_field_value_t OwnedProperties::clone_value(const amqp_field_value_t& value, int depth) {
    amqp_field_value_t out = value;
    // Deeper than anything idemq renders or republishes: not worth a
    // recursion as deep as a frame allows (tens of thousands of levels).
    if (depth > kMaxFieldDepth + 1) {
        out.kind = AMQP_FIELD_KIND_VOID;
        return out;
    }
    switch (value.kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES: out.value.bytes = copy_bytes(to_string(value.value.bytes)); break;
        case AMQP_FIELD_KIND_TABLE: out.value.table = clone_table(value.value.table, depth); break;
        case AMQP_FIELD_KIND_ARRAY: {
            const amqp_array_t& array = value.value.array;
            out.value.array = amqp_array_t{};
            if (array.num_entries <= 0 || array.entries == nullptr) break;
            auto* items = static_cast<amqp_field_value_t*>(
                amqp_pool_alloc(pool_.get(), sizeof(amqp_field_value_t) * static_cast<std::size_t>(array.num_entries)));
            if (items == nullptr) throw std::bad_alloc();
            for (int i = 0; i < array.num_entries; ++i) items[i] = clone_value(array.entries[i], depth + 1);
            out.value.array.num_entries = array.num_entries;
            out.value.array.entries = items;
            break;
        }
        default: break;
    }
    return out;
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
        out.insert_or_assign(to_string(entry.key), field_to_text(entry.value));
    }
    return out;
}

OwnedProperties OwnedProperties::with_headers(const HeaderList& headers, std::string_view drop_prefix) const {
    std::vector<int> indices;
    const int old_count = (props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0 ? props_.headers.num_entries : 0;
    for (int i = 0; i < old_count; ++i) {
        const std::string key = to_string(props_.headers.entries[i].key);
        const bool replaced =
            std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == key; });
        const bool dropped = !drop_prefix.empty() && key.starts_with(drop_prefix);
        if (!replaced && !dropped) indices.push_back(i);
    }
    return with_entries(indices, headers);
}

OwnedProperties OwnedProperties::with_entries(const std::vector<int>& keep, const HeaderList& headers) const {
    OwnedProperties out(props_);
    const amqp_table_t& old = out.props_.headers;
    auto* entries = static_cast<amqp_table_entry_t*>(amqp_pool_alloc(
        out.pool_.get(), sizeof(amqp_table_entry_t) * std::max<std::size_t>(keep.size() + headers.size(), 1)));
    if (entries == nullptr) throw std::bad_alloc();
    int count = 0;
    for (const int i : keep) entries[count++] = old.entries[i];
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

namespace {

// The headers the broker routes by: each CC/BCC key is one more copy in one
// more queue. BCC is removed by the broker before delivery, but an imported
// or hand-made copy may still carry it.
bool is_routing_header(std::string_view key) noexcept { return key == "CC" || key == "BCC"; }

std::size_t short_string_size(amqp_flags_t flags, amqp_flags_t flag, amqp_bytes_t bytes) noexcept {
    return (flags & flag) != 0 ? 1 + bytes.len : 0;
}

}  // namespace

std::optional<std::size_t> OwnedProperties::encoded_size() const {
    const amqp_flags_t flags = props_._flags;
    std::size_t total = 0;
    // Only the fields whose flag is set are read: the others may hold
    // anything (rabbitmq-c does not clear what it does not decode).
    for (const auto& p : kBytesProperties) {
        if ((flags & p.flag) != 0 && (props_.*p.field).len > 255) return std::nullopt;
    }
    total += short_string_size(flags, AMQP_BASIC_CONTENT_TYPE_FLAG, props_.content_type);
    total += short_string_size(flags, AMQP_BASIC_CONTENT_ENCODING_FLAG, props_.content_encoding);
    total += short_string_size(flags, AMQP_BASIC_CORRELATION_ID_FLAG, props_.correlation_id);
    total += short_string_size(flags, AMQP_BASIC_REPLY_TO_FLAG, props_.reply_to);
    total += short_string_size(flags, AMQP_BASIC_EXPIRATION_FLAG, props_.expiration);
    total += short_string_size(flags, AMQP_BASIC_MESSAGE_ID_FLAG, props_.message_id);
    total += short_string_size(flags, AMQP_BASIC_TYPE_FLAG, props_.type);
    total += short_string_size(flags, AMQP_BASIC_USER_ID_FLAG, props_.user_id);
    total += short_string_size(flags, AMQP_BASIC_APP_ID_FLAG, props_.app_id);
    total += short_string_size(flags, AMQP_BASIC_CLUSTER_ID_FLAG, props_.cluster_id);
    if ((flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0) total += 1;
    if ((flags & AMQP_BASIC_PRIORITY_FLAG) != 0) total += 1;
    if ((flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) total += 8;
    if ((flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        const auto headers = detail::encoded_size(props_.headers);
        if (!headers) return std::nullopt;
        total += *headers;
    }
    // class id, weight, body size and the property flags.
    return total + 14;
}

std::size_t republish_budget(int frame_max) noexcept {
    // Frame header and end octet, plus room for what is added after the
    // bound: the publisher's sequence header and a replay's two headers.
    constexpr std::size_t kMargin = 8 + 1024;
    const std::size_t frame = frame_max > 0 ? static_cast<std::size_t>(frame_max) : kDefaultFrameMax;
    return frame > 2 * kMargin ? frame - kMargin : frame / 2;
}

OwnedProperties OwnedProperties::for_republish(HeaderList headers, std::size_t max_bytes) const {
    if ((props_._flags & AMQP_BASIC_EXPIRATION_FLAG) != 0) {
        headers.emplace_back(std::string(header::kOriginalExpiration), bounded(to_string(props_.expiration)));
    }
    if ((props_._flags & AMQP_BASIC_USER_ID_FLAG) != 0) {
        headers.emplace_back(std::string(header::kOriginalUserId), bounded(to_string(props_.user_id)));
    }
    const bool had_headers = (props_._flags & AMQP_BASIC_HEADERS_FLAG) != 0;
    const int old_count = had_headers ? props_.headers.num_entries : 0;
    for (int i = 0; i < old_count; ++i) {
        const auto& entry = props_.headers.entries[i];
        if (to_string(entry.key) == "CC") {
            headers.emplace_back(std::string(header::kOriginalCc), bounded(field_to_text(entry.value)));
        }
    }
    const auto ours = [&](std::string_view key) {
        return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == key; });
    };

    // Which of the original headers travel on: not the routing ones, not
    // those idemq replaces, and, when the whole table would not fit in one
    // frame, not the largest ones.
    struct Candidate {
        int index;
        std::size_t size;
        std::string key;
    };
    std::vector<Candidate> kept;
    std::vector<std::string> dropped;
    std::string previous_dropped;
    for (int i = 0; i < old_count; ++i) {
        const auto& entry = props_.headers.entries[i];
        std::string key = to_string(entry.key);
        if (key == header::kDroppedHeaders) {
            previous_dropped = field_to_text(entry.value);
            continue;
        }
        if (is_routing_header(key) || ours(key)) continue;
        const auto size = detail::encoded_size(entry.value);
        if (!size || key.size() > 255) {
            dropped.push_back(std::move(key));
            continue;
        }
        kept.push_back({i, 1 + key.size() + *size, std::move(key)});
    }

    // Everything but the original headers, measured on a copy without them.
    OwnedProperties ours_only = with_entries({}, headers);
    ours_only.props_._flags &= ~static_cast<amqp_flags_t>(AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_USER_ID_FLAG);
    ours_only.props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    const std::size_t fixed = ours_only.encoded_size().value_or(max_bytes);
    // Room for the x-idemq-dropped-headers entry itself.
    const std::size_t note = 1 + header::kDroppedHeaders.size() + 1 + 4 + kMaxHeaderValueBytes;
    const std::size_t room = fixed + note < max_bytes ? max_bytes - fixed - note : 0;
    std::size_t total = std::accumulate(kept.begin(), kept.end(), std::size_t{0},
                                        [](std::size_t sum, const Candidate& c) { return sum + c.size; });
    if (total > room || !dropped.empty()) {
        std::vector<std::size_t> by_size(kept.size());
        std::iota(by_size.begin(), by_size.end(), std::size_t{0});
        std::stable_sort(by_size.begin(), by_size.end(),
                         [&](std::size_t a, std::size_t b) { return kept[a].size > kept[b].size; });
        std::vector<bool> drop(kept.size(), false);
        for (const std::size_t k : by_size) {
            if (total <= room) break;
            drop[k] = true;
            total -= kept[k].size;
            dropped.push_back(kept[k].key);
        }
        std::vector<Candidate> still;
        for (std::size_t k = 0; k < kept.size(); ++k) {
            if (!drop[k]) still.push_back(std::move(kept[k]));
        }
        kept = std::move(still);
    }
    if (!dropped.empty()) {
        std::string names = previous_dropped;
        for (const auto& name : dropped) {
            // Names are bytes from the wire; the list is for people, so it is text.
            names += (names.empty() ? "" : ",") + (is_utf8(name) ? name : "$base64:" + base64_encode(name));
        }
        headers.emplace_back(std::string(header::kDroppedHeaders), bounded(names));
    } else if (!previous_dropped.empty()) {
        headers.emplace_back(std::string(header::kDroppedHeaders), bounded(previous_dropped));
    }

    std::vector<int> indices;
    indices.reserve(kept.size());
    for (const auto& candidate : kept) indices.push_back(candidate.index);
    OwnedProperties out = with_entries(indices, headers);
    out.props_._flags &= ~static_cast<amqp_flags_t>(AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_USER_ID_FLAG);
    out.props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    out.props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
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
