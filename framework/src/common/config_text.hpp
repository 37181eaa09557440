#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace idemq::detail {

// Settings as text: read from the environment or a flag, and shown in logs
// and error messages. Internal (WorkerOptions::from_environment, the
// connections, idemqctl): no user code needs either.

// A duration such as "14d", "36h", "90m", "45s" or a number of seconds.
// Throws ConfigError naming `setting` when it does not parse.
[[nodiscard]] std::chrono::seconds parse_duration(std::string_view text, std::string_view setting);

// An AMQP URL, Postgres URL or libpq key=value string as logs, exception
// texts and tools may show it: parsed as the connection will parse it, then
// written out again with every password as `***` (redaction.cpp). Text that
// does not parse is never echoed: "<unparseable URL, N bytes: ...>".
[[nodiscard]] std::string redact_url(const std::string& url);

// Whether redact_url can show `url`: false for text that would be misread,
// such as a password with an unencoded '/' or '@'. Connections refuse such
// text before the driver sees it, since the driver's own error message could
// quote pieces of it.
[[nodiscard]] bool url_is_well_formed(const std::string& url);

// Whether `url` carries a password (true when it cannot tell).
[[nodiscard]] bool url_has_password(const std::string& url);

}  // namespace idemq::detail
