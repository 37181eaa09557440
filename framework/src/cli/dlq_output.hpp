#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace idemq::detail {

// What the dlq commands print for an empty field.
[[nodiscard]] inline std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

// One JSON line. Text that is not UTF-8 is replaced rather than thrown on;
// ids go through bytes_to_json first, which keeps them exact.
[[nodiscard]] inline std::string dump(const nlohmann::json& json) {
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace idemq::detail
