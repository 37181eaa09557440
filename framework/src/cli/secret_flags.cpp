#include "cli/secret_flags.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <utility>

#include "common/config_text.hpp"
#include "common/log.hpp"

namespace idemq::detail {
namespace {

struct SecretFlag {
    std::string_view flag;
    std::string_view file_setting;
};

constexpr std::array kSecretFlags{SecretFlag{"--amqp-url", "IDEMQ_AMQP_URL_FILE"},
                                  SecretFlag{"--database-url", "IDEMQ_DATABASE_URL_FILE"}};

// The bytes of `value` that hold its password: [first, second).
std::pair<std::size_t, std::size_t> password_bytes(const std::string& value) {
    if (!url_has_password(value)) return {0, 0};
    const auto scheme = value.find("://");
    const auto at = value.rfind('@');
    if (scheme != std::string::npos && at != std::string::npos && at > scheme + 3 &&
        value.find("password=", at) == std::string::npos) {
        // user:password@...: everything between the first ':' and the last
        // '@', the most an unencoded '@' in the password can stretch to.
        const auto colon = value.find(':', scheme + 3);
        if (colon < at) return {colon + 1, at};
    }
    return {0, value.size()};
}

void scrub(char* value) {
    const auto [first, last] = password_bytes(value);
    std::fill(value + first, value + last, 'x');
}

}  // namespace

void scrub_secret_flags(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        for (const auto& secret : kSecretFlags) {
            char* value = nullptr;
            if (arg == secret.flag && i + 1 < argc) {
                value = argv[i + 1];
            } else if (arg.starts_with(secret.flag) && arg.size() > secret.flag.size() &&
                       arg[secret.flag.size()] == '=') {
                value = argv[i] + secret.flag.size() + 1;
            }
            if (value == nullptr || !url_has_password(value)) continue;
            scrub(value);
            log().warn(
                "{} carries a password on the command line, where every local user can read it; set {} "
                "instead (the flag's password was overwritten in the process's arguments once parsed)",
                secret.flag, secret.file_setting);
        }
    }
}

}  // namespace idemq::detail
