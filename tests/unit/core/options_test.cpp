#include <doctest/doctest.h>

#include <idemq/errors.hpp>
#include <idemq/options.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

using idemq::ConfigError;
using idemq::WorkerOptions;

namespace {

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        setenv(name, value, 1);
    }
    ~ScopedEnv() {
        if (old_) {
            setenv(name_, old_->c_str(), 1);
        } else {
            unsetenv(name_);
        }
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

WorkerOptions valid() {
    return {.amqp_url = "amqp://u:p@127.0.0.1:5672/", .database_url = "postgresql://u:p@127.0.0.1/db"};
}

std::string config_error(const WorkerOptions& options) {
    try {
        options.validate();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("default options with both URLs are valid") { CHECK_NOTHROW(valid().validate()); }

TEST_CASE("a missing or wrong setting is refused with a message naming it") {
    WorkerOptions options = valid();
    options.amqp_url.clear();
    CHECK(config_error(options).find("IDEMQ_AMQP_URL") != std::string::npos);

    options = valid();
    options.amqp_url = "http://x";
    CHECK(config_error(options).find("IDEMQ_AMQP_URL") != std::string::npos);

    options = valid();
    options.database_url.clear();
    CHECK(config_error(options).find("IDEMQ_DATABASE_URL") != std::string::npos);

    options = valid();
    options.concurrency = 0;
    CHECK(config_error(options).find("IDEMQ_CONCURRENCY") != std::string::npos);

    options = valid();
    options.concurrency = 8;
    options.prefetch = 4;
    CHECK(config_error(options).find("IDEMQ_PREFETCH") != std::string::npos);

    options = valid();
    options.schema = std::string(64, 's');
    CHECK(config_error(options).find("IDEMQ_SCHEMA") != std::string::npos);

    options = valid();
    options.outbox_lease = std::chrono::seconds(0);
    CHECK(config_error(options).find("IDEMQ_OUTBOX_LEASE") != std::string::npos);

    options = valid();
    options.outbox_retention = std::chrono::minutes(59);
    CHECK(config_error(options).find("IDEMQ_OUTBOX_RETENTION") != std::string::npos);
}

TEST_CASE("settings come from the IDEMQ_ environment variables") {
    const ScopedEnv amqp("IDEMQ_AMQP_URL", "amqp://a:b@h:1/v");
    const ScopedEnv concurrency("IDEMQ_CONCURRENCY", "7");
    const ScopedEnv prefetch("IDEMQ_PREFETCH", "70");
    const ScopedEnv schema("IDEMQ_SCHEMA", "inbox_x");
    const ScopedEnv lease("IDEMQ_OUTBOX_LEASE", "2s");
    const ScopedEnv outbox_retention("IDEMQ_OUTBOX_RETENTION", "36h");
    const WorkerOptions options = WorkerOptions::from_environment();
    CHECK(options.outbox_lease == std::chrono::seconds(2));
    CHECK(options.outbox_retention == std::chrono::hours(36));
    CHECK(options.amqp_url == "amqp://a:b@h:1/v");
    CHECK(options.concurrency == 7);
    CHECK(options.prefetch == 70);
    CHECK(options.schema == "inbox_x");
}

TEST_CASE("a number that does not parse is refused with the variable's name and value") {
    const ScopedEnv concurrency("IDEMQ_CONCURRENCY", "four");
    try {
        (void)WorkerOptions::from_environment();
        FAIL("expected a ConfigError");
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.find("IDEMQ_CONCURRENCY") != std::string::npos);
        CHECK(what.find("four") != std::string::npos);
    }
}

TEST_CASE("the URLs may come from the files that IDEMQ_AMQP_URL_FILE and IDEMQ_DATABASE_URL_FILE name") {
    const std::string path = "/tmp/idemq_options_test_" + std::to_string(::getpid());
    std::ofstream(path) << "postgresql://u:p%2Fq@h/db\n";
    const ScopedEnv plain("IDEMQ_DATABASE_URL", "");  // empty counts as unset
    const ScopedEnv file("IDEMQ_DATABASE_URL_FILE", path.c_str());
    const WorkerOptions options = WorkerOptions::from_environment();
    std::remove(path.c_str());
    CHECK(options.database_url == "postgresql://u:p%2Fq@h/db");
}

TEST_CASE("a URL whose password is not percent-encoded is refused, naming the setting, without echoing it") {
    WorkerOptions options = valid();
    options.amqp_url = "amqp://u:Kq7/Zr9@h:5672/v";
    std::string error = config_error(options);
    CHECK(error.find("IDEMQ_AMQP_URL") != std::string::npos);
    CHECK(error.find("Kq7") == std::string::npos);
    CHECK(error.find("Zr9") == std::string::npos);

    options = valid();
    options.database_url = "postgresql://u:Kq7/Zr9@h/db";
    error = config_error(options);
    CHECK(error.find("IDEMQ_DATABASE_URL") != std::string::npos);
    CHECK(error.find("Kq7") == std::string::npos);
    CHECK(error.find("Zr9") == std::string::npos);
}
