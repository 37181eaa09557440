#pragma once

#include <idemq/message.hpp>

#include <amqp.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace idemq::detail {

// A header idemq writes itself: text or a whole number.
using HeaderValue = std::variant<std::string, std::int64_t>;
using HeaderList = std::vector<std::pair<std::string, HeaderValue>>;

// The frame_max idemq asks for (the broker's default).
inline constexpr std::size_t kDefaultFrameMax = 131072;

// How many bytes the properties of a republished copy may take on a
// connection with this frame_max, leaving a margin for the headers added
// after the bound (the publisher's sequence number, a replay's count).
[[nodiscard]] std::size_t republish_budget(int frame_max) noexcept;
inline constexpr std::size_t kDefaultRepublishBudget = kDefaultFrameMax - 8 - 1024;

// The properties that are byte strings, by name: the export format and the
// encoded size go through them all.
struct BytesProperty {
    const char* name;
    amqp_flags_t flag;
    amqp_bytes_t amqp_basic_properties_t::*field;
};

inline constexpr BytesProperty kBytesProperties[] = {
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

// A deep copy of AMQP basic properties in a pool of its own, so it outlives
// the connection's frame buffers and can be republished unchanged.
class OwnedProperties final {
public:
    OwnedProperties();
    explicit OwnedProperties(const amqp_basic_properties_t& source);
    OwnedProperties(OwnedProperties&&) noexcept = default;
    OwnedProperties& operator=(OwnedProperties&&) noexcept = default;
    ~OwnedProperties() = default;

    [[nodiscard]] const amqp_basic_properties_t& get() const noexcept { return props_; }

    // The value of a bytes property (message id, correlation id, ...), empty when unset.
    [[nodiscard]] std::string message_id() const;
    [[nodiscard]] std::string correlation_id() const;
    [[nodiscard]] std::string content_type() const;

    // A header as a whole number, when present and integral.
    [[nodiscard]] std::optional<std::int64_t> int_header(std::string_view name) const;

    // Every header rendered as text, for idemq::Message.
    [[nodiscard]] Headers headers_as_text() const;

    // A copy whose headers are these properties' headers with `headers` set
    // (replacing any header of the same name); every other property is kept.
    // With `drop_prefix`, headers whose name starts with it are removed first.
    [[nodiscard]] OwnedProperties with_headers(const HeaderList& headers, std::string_view drop_prefix = {}) const;

    // A copy fit for idemq to republish (to a delay tier or the DLQ) with
    // `headers` set: persistent; without `expiration` (a per-message TTL
    // would expire the copy silently after the original was acked) and
    // without `user-id` (the broker refuses a user-id that is not the
    // publishing connection's user); both kept as x-idemq-original-* headers.
    // Without the CC and BCC headers, which would route more copies to more
    // queues (CC is kept as text in x-idemq-original-cc). Its encoded
    // properties take at most `max_bytes`: when the original's headers
    // would not fit beside idemq's, the largest of them are dropped and
    // named in x-idemq-dropped-headers; idemq's own headers are always kept.
    [[nodiscard]] OwnedProperties for_republish(HeaderList headers,
                                                std::size_t max_bytes = kDefaultRepublishBudget) const;

    // The exact size of these properties in a content header frame's
    // payload, or nullopt when rabbitmq-c could not encode them at all.
    [[nodiscard]] std::optional<std::size_t> encoded_size() const;

    // Plain properties for a message idemq publishes itself: persistent,
    // with the given ids, content type and headers.
    [[nodiscard]] static OwnedProperties make(std::string_view message_id, std::string_view correlation_id,
                                              std::string_view content_type, const HeaderList& headers);

    // All properties and headers as JSON, and back: the export format of the
    // DLQ tools. Byte-exact: see amqp/value.hpp for the typed values. A bytes
    // property that is not UTF-8 is {"$string_base64": ...}. from_json also
    // reads files of the older, untyped format; it throws idemq::Error for
    // what cannot be AMQP properties.
    [[nodiscard]] nlohmann::json to_json() const;
    [[nodiscard]] static OwnedProperties from_json(const nlohmann::json& json);

private:
    struct PoolDeleter {
        void operator()(amqp_pool_t* pool) const noexcept;
    };

    amqp_bytes_t copy_bytes(std::string_view bytes);
    amqp_table_t clone_table(const amqp_table_t& table, int depth);
    amqp_field_value_t clone_value(const amqp_field_value_t& value, int depth);
    amqp_field_value_t field_from_json(const nlohmann::json& json, int depth);
    amqp_table_t table_from_json(const nlohmann::json& json, int depth);
    // A copy whose headers are the entries of these headers at `keep`, then `headers`.
    [[nodiscard]] OwnedProperties with_entries(const std::vector<int>& keep, const HeaderList& headers) const;

    std::unique_ptr<amqp_pool_t, PoolDeleter> pool_;
    amqp_basic_properties_t props_{};
};

// An AMQP table as JSON (the typed form of amqp/value.hpp); never throws on content.
[[nodiscard]] nlohmann::json to_json(const amqp_table_t& table);

// Bytes from a view without copying; valid as long as the view is.
[[nodiscard]] amqp_bytes_t as_amqp_bytes(std::string_view text) noexcept;
[[nodiscard]] std::string to_string(amqp_bytes_t bytes);

}  // namespace idemq::detail
