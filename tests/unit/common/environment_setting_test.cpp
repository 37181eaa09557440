#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/environment_setting.hpp"

using idemq::detail::setting_from_environment;

namespace {

class ScopedVariable {
public:
    ScopedVariable(const char* name, const std::string& value) : name_(name) { setenv(name, value.c_str(), 1); }
    ~ScopedVariable() { unsetenv(name_); }
    ScopedVariable(const ScopedVariable&) = delete;
    ScopedVariable& operator=(const ScopedVariable&) = delete;

private:
    const char* name_;
};

class SecretFile {
public:
    explicit SecretFile(const std::string& content)
        : path_("/tmp/idemq_secret_" + std::to_string(::getpid()) + "_" + std::to_string(++serial_)) {
        std::ofstream(path_, std::ios::binary) << content;
        ::chmod(path_.c_str(), 0600);
    }
    ~SecretFile() { std::remove(path_.c_str()); }
    SecretFile(const SecretFile&) = delete;
    SecretFile& operator=(const SecretFile&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    static inline int serial_ = 0;
    std::string path_;
};

std::string config_error() {
    try {
        (void)setting_from_environment("IDEMQ_TEST_SECRET");
    } catch (const idemq::ConfigError& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("a setting is read from its variable, or from the file its _FILE variable names, less one newline") {
    CHECK_FALSE(setting_from_environment("IDEMQ_TEST_SECRET").has_value());
    {
        const ScopedVariable value("IDEMQ_TEST_SECRET", "amqp://u:p@h/v");
        CHECK(setting_from_environment("IDEMQ_TEST_SECRET") == "amqp://u:p@h/v");
    }
    const SecretFile file("amqp://u:p%2F@h/v\n");
    const ScopedVariable path("IDEMQ_TEST_SECRET_FILE", file.path());
    CHECK(setting_from_environment("IDEMQ_TEST_SECRET") == "amqp://u:p%2F@h/v");
    // A mode wider than 0600 is warned about, not refused.
    ::chmod(file.path().c_str(), 0644);
    CHECK(setting_from_environment("IDEMQ_TEST_SECRET") == "amqp://u:p%2F@h/v");
}

TEST_CASE("setting both a variable and its _FILE variable, or naming a missing or empty file, is a ConfigError") {
    const SecretFile file("secret");
    {
        const ScopedVariable value("IDEMQ_TEST_SECRET", "other");
        const ScopedVariable path("IDEMQ_TEST_SECRET_FILE", file.path());
        const std::string error = config_error();
        CHECK(error.find("IDEMQ_TEST_SECRET and IDEMQ_TEST_SECRET_FILE") != std::string::npos);
        CHECK(error.find("other") == std::string::npos);  // names the settings, never a value
    }
    {
        const ScopedVariable path("IDEMQ_TEST_SECRET_FILE", file.path() + ".missing");
        CHECK(config_error().find("IDEMQ_TEST_SECRET_FILE") != std::string::npos);
    }
    {
        const SecretFile empty("\n");
        const ScopedVariable path("IDEMQ_TEST_SECRET_FILE", empty.path());
        CHECK(config_error().find("is empty") != std::string::npos);
    }
}
