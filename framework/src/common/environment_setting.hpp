#pragma once

#include <optional>
#include <string>

namespace idemq::detail {

// The value of the setting `name` (e.g. "IDEMQ_AMQP_URL"): from the variable
// itself, or read from the file that `name`_FILE names, the container-secret
// convention (Docker and Kubernetes mount secrets as files), with one
// trailing newline removed. nullopt when neither is set (an empty variable
// counts as unset). Throws ConfigError when both are set, or when the file
// cannot be read or is empty. Logs a warning when the file can be read by
// its group or by others (mode wider than 0600); callers read each setting
// once at start, so the warning appears once.
[[nodiscard]] std::optional<std::string> setting_from_environment(const std::string& name);

}  // namespace idemq::detail
