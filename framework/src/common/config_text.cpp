#include "common/config_text.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <charconv>
#include <regex>
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

std::string redact_url(const std::string& url) {
    // scheme://user:password@host..., libpq's key=value form and ?password=.
    static const std::regex userinfo(R"(^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):[^@/]*@)");
    static const std::regex keyword(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
    std::string out = std::regex_replace(url, userinfo, "$1:***@");
    return std::regex_replace(out, keyword, "$1***");
}

}  // namespace idemq::detail
