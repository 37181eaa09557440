#include "common/environment_setting.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/log.hpp"

namespace idemq::detail {
namespace {

const char* variable(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    return value != nullptr && *value != '\0' ? value : nullptr;
}

std::string read_secret_file(const std::string& setting, const std::string& path) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        throw ConfigError(fmt::format("{}: cannot read '{}': {}", setting, path, std::strerror(errno)));
    }
    if ((status.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        log().warn("{}: '{}' has mode {:04o}: group or others may read the secret in it; chmod 600 it", setting, path,
                   status.st_mode & 07777);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(fmt::format("{}: cannot read '{}'", setting, path));
    std::string value{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    // `echo secret > file` and most editors end the file with a newline.
    if (value.ends_with('\n')) value.pop_back();
    if (value.ends_with('\r')) value.pop_back();
    if (value.empty()) throw ConfigError(fmt::format("{}: '{}' is empty", setting, path));
    return value;
}

}  // namespace

std::optional<std::string> setting_from_environment(const std::string& name) {
    const std::string file_setting = name + "_FILE";
    const char* value = variable(name);
    const char* file = variable(file_setting);
    if (value != nullptr && file != nullptr) {
        throw ConfigError(fmt::format("both {} and {} are set: set one", name, file_setting));
    }
    if (file != nullptr) return read_secret_file(file_setting, file);
    if (value != nullptr) return std::string(value);
    return std::nullopt;
}

}  // namespace idemq::detail
