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
    [[nodiscard]] OwnedProperties for_republish(HeaderList headers) const;

    // Plain properties for a message idemq publishes itself: persistent,
    // with the given ids, content type and headers.
    [[nodiscard]] static OwnedProperties make(std::string_view message_id, std::string_view correlation_id,
                                              std::string_view content_type, const HeaderList& headers);

    // All properties and headers as JSON (headers keep their JSON types), and
    // back: the export format of the DLQ tools.
    [[nodiscard]] nlohmann::json to_json() const;
    [[nodiscard]] static OwnedProperties from_json(const nlohmann::json& json);

private:
    struct PoolDeleter {
        void operator()(amqp_pool_t* pool) const noexcept;
    };

    amqp_bytes_t copy_bytes(std::string_view bytes);
    amqp_field_value_t field_from_json(const nlohmann::json& json);
    amqp_table_t table_from_json(const nlohmann::json& json);

    std::unique_ptr<amqp_pool_t, PoolDeleter> pool_;
    amqp_basic_properties_t props_{};
};

// An AMQP table as JSON: numbers, booleans, strings, arrays, objects.
[[nodiscard]] nlohmann::json to_json(const amqp_table_t& table);

// Bytes from a view without copying; valid as long as the view is.
[[nodiscard]] amqp_bytes_t as_amqp_bytes(std::string_view text) noexcept;
[[nodiscard]] std::string to_string(amqp_bytes_t bytes);

}  // namespace idemq::detail
