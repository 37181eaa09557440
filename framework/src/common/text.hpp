#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace idemq::detail {

// True when `bytes` is valid UTF-8 by the strict rules of RFC 3629 (no
// overlong forms, no surrogates, nothing past U+10FFFF): exactly what
// nlohmann's serializer accepts.
[[nodiscard]] bool is_utf8(std::string_view bytes) noexcept;

// `bytes` as valid UTF-8 text that shows every byte: valid UTF-8 characters
// stay as they are, a backslash becomes `\\`, and control characters and
// bytes that are not valid UTF-8 become `\xNN`. For ids and keys from the
// wire in error messages and headers idemq writes.
[[nodiscard]] std::string printable(std::string_view bytes);

// The first line of `text`: exception messages of libpq span several.
[[nodiscard]] inline std::string first_line(std::string_view text) {
    return std::string(text.substr(0, text.find('\n')));
}

// RFC 3339 UTC with milliseconds, as idemq writes times into headers and logs.
[[nodiscard]] std::string format_time(std::chrono::system_clock::time_point time);

}  // namespace idemq::detail
