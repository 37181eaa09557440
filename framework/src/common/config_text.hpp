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

// `url` with any password replaced by `***`, for logs and error messages.
[[nodiscard]] std::string redact_url(const std::string& url);

}  // namespace idemq::detail
