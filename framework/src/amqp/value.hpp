#pragma once

#include <amqp.h>
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace idemq::detail {

// AMQP field values are bytes from the wire: nothing here may throw on their
// content (only std::bad_alloc), whatever kind, nesting or bytes they hold.
//
// The JSON form, used by the DLQ export and to show non-text headers to
// handlers, keeps every value exactly and is always valid UTF-8:
//   long string 'S', valid UTF-8      "text"
//   long string 'S', not UTF-8        {"$string_base64": "..."}
//   byte array 'x'                    {"$bytes_base64": "..."}
//   decimal 'D'                       {"$decimal": "123.45"}  (exact: the digits and the scale)
//   timestamp 'T'                     {"$timestamp": 1700000000}
//   integers, booleans, floats        JSON numbers / booleans (NaN and infinities become null)
//   void 'V'                          null
//   array 'A' / table 'F'             JSON array / object
// A table key that is not UTF-8 or starts with '$' is written "$base64:" +
// base64(key), so a one-key object whose key starts with '$' is always a
// typed value, never a table. Values nested deeper than kMaxFieldDepth are
// written {"$too_deep": true} (read back as void).
inline constexpr int kMaxFieldDepth = 64;

[[nodiscard]] nlohmann::json field_to_json(const amqp_field_value_t& value);
[[nodiscard]] nlohmann::json table_to_json(const amqp_table_t& table);

// A value as text for idemq::Message: strings and byte arrays byte for byte,
// numbers in decimal, booleans true/false, decimals exactly ("123.45"),
// everything else as its JSON form.
[[nodiscard]] std::string field_to_text(const amqp_field_value_t& value);

// The JSON form of a bytes property (message id, ...): a string when it is
// UTF-8, else {"$string_base64": ...}; and back (nullopt for anything else).
[[nodiscard]] nlohmann::json bytes_to_json(std::string_view bytes);
[[nodiscard]] std::optional<std::string> bytes_from_json(const nlohmann::json& json);

// The exact number of bytes rabbitmq-c writes for a value (kind octet
// included) or a table (length prefix included); nullopt when it cannot be
// encoded at all (a key over 255 bytes, an unknown kind) or nests deeper
// than kMaxFieldDepth.
[[nodiscard]] std::optional<std::size_t> encoded_size(const amqp_field_value_t& value, int depth = 0);
[[nodiscard]] std::optional<std::size_t> encoded_size(const amqp_table_t& table, int depth = 0);

// Decimal digits of `value` scaled down by `decimals` places, exactly.
[[nodiscard]] std::string decimal_text(std::uint32_t value, std::uint8_t decimals);

}  // namespace idemq::detail
