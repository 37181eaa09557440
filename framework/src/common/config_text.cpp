#include "common/config_text.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <charconv>
#include <system_error>

namespace idemq::detail {

std::chrono::seconds parse_duration(std::string_view text, std::string_view setting) {
    long long value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    long long scale = 0;
    if (unit.empty() || unit == "s") scale = 1;
    if (unit == "m") scale = 60;
    if (unit == "h") scale = 3600;
    if (unit == "d") scale = 24 * 3600;
    if (error != std::errc() || value < 0 || scale == 0 || value > 3650LL * 24 * 3600 / scale) {
        throw ConfigError(fmt::format("{} must be a duration like 14d, 36h, 90m or 45s, got '{}'", setting, text));
    }
    return std::chrono::seconds(value * scale);
}

}  // namespace idemq::detail
