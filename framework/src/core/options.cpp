#include <idemq/errors.hpp>
#include <idemq/options.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <limits>

#include "amqp/tls.hpp"
#include "common/config_text.hpp"
#include "common/environment_setting.hpp"
#include "inbox/database_tls.hpp"

namespace idemq {
namespace {

constexpr int kMaxConcurrency = 256;
constexpr int kMaxPrefetch = 65535;
constexpr std::size_t kMaxSchemaName = 63;  // Postgres identifiers

const char* env(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : nullptr;
}

long long parse_whole(const char* name, std::string_view text, long long min, long long max) {
    long long value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
        throw ConfigError(fmt::format("{} must be a whole number from {} to {}, got '{}'", name, min, max, text));
    }
    return value;
}

bool parse_on_off(const char* name, std::string_view text) {
    if (text != "on" && text != "off") throw ConfigError(fmt::format("{} must be on or off, got '{}'", name, text));
    return text == "on";
}

bool parse_zero_one(const char* name, std::string_view text) {
    if (text != "0" && text != "1") throw ConfigError(fmt::format("{} must be 0 or 1, got '{}'", name, text));
    return text == "1";
}

void require_range(const char* name, long long value, long long min, long long max) {
    if (value < min || value > max)
        throw ConfigError(fmt::format("{} must be from {} to {}, got {}", name, min, max, value));
}

}  // namespace

void WorkerOptions::validate() const {
    if (amqp_url.empty()) throw ConfigError("IDEMQ_AMQP_URL is not set (e.g. amqp://user:password@host:5672/vhost)");
    const bool amqps = amqp_url.starts_with("amqps://");
    if (!amqp_url.starts_with("amqp://") && !amqps) {
        throw ConfigError(
            fmt::format("IDEMQ_AMQP_URL must start with amqp:// or amqps://, got '{}'", detail::redact_url(amqp_url)));
    }
    detail::check_broker_security(amqps, detail::BrokerSecurity::of(*this));
    if (database_url.empty()) {
        throw ConfigError("IDEMQ_DATABASE_URL is not set (e.g. postgresql://user:password@host:5432/dbname)");
    }
    // Refused here, before a driver's error message can quote pieces of it.
    if (!detail::url_is_well_formed(amqp_url)) {
        throw ConfigError(fmt::format("IDEMQ_AMQP_URL is not a valid AMQP URL: {}", detail::redact_url(amqp_url)));
    }
    if (!detail::url_is_well_formed(database_url)) {
        throw ConfigError(fmt::format("IDEMQ_DATABASE_URL is not a valid Postgres URL or connection string: {}",
                                      detail::redact_url(database_url)));
    }
    if (require_tls) detail::require_verified_database_tls(database_url);
    require_range("IDEMQ_CONCURRENCY", concurrency, 1, kMaxConcurrency);
    require_range("IDEMQ_PREFETCH", prefetch, 1, kMaxPrefetch);
    if (prefetch < concurrency) {
        throw ConfigError(
            fmt::format("IDEMQ_PREFETCH ({}) is lower than IDEMQ_CONCURRENCY ({}): handler threads "
                        "would sit idle",
                        prefetch, concurrency));
    }
    if (schema.empty() || schema.size() > kMaxSchemaName || schema.find('\0') != std::string::npos) {
        throw ConfigError(fmt::format("IDEMQ_SCHEMA must be 1 to {} bytes, got '{}'", kMaxSchemaName, schema));
    }
    if (max_body_bytes == 0) throw ConfigError("IDEMQ_MAX_BODY_BYTES must be at least 1");
    require_range("IDEMQ_SHUTDOWN_GRACE_MS", shutdown_grace.count(), 0, 24LL * 3600 * 1000);
    require_range("IDEMQ_HEARTBEAT_S", heartbeat.count(), 1, 3600);
    require_range("IDEMQ_CRASH_LOOP_LIMIT", crash_loop_limit, 1, 1000);
    require_range("IDEMQ_HANDLER_WARN_MS", handler_warn_after.count(), 1, 24LL * 3600 * 1000);
    require_range("IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS", idle_in_transaction_timeout.count(), 0, 24LL * 3600 * 1000);
    if (inbox_retention < std::chrono::hours(1)) throw ConfigError("IDEMQ_INBOX_RETENTION must be at least 1h");
    if (outbox_max_attempts < 1) throw ConfigError("IDEMQ_OUTBOX_MAX_ATTEMPTS must be at least 1");
    if (outbox_lease < std::chrono::seconds(1) || outbox_lease > std::chrono::hours(1)) {
        throw ConfigError("IDEMQ_OUTBOX_LEASE must be between 1s and 1h");
    }
    if (outbox_retention < std::chrono::hours(1)) throw ConfigError("IDEMQ_OUTBOX_RETENTION must be at least 1h");
    if (inbox_prune_interval.count() < 0) throw ConfigError("IDEMQ_INBOX_PRUNE_INTERVAL must not be negative");
}

WorkerOptions WorkerOptions::from_environment() {
    WorkerOptions options;
    if (auto v = detail::setting_from_environment("IDEMQ_AMQP_URL")) options.amqp_url = *std::move(v);
    if (auto v = detail::setting_from_environment("IDEMQ_DATABASE_URL")) options.database_url = *std::move(v);
    if (const char* v = env("IDEMQ_AMQP_CACERT")) options.amqp_tls.ca_file = v;
    if (const char* v = env("IDEMQ_AMQP_CERT")) options.amqp_tls.cert_file = v;
    if (const char* v = env("IDEMQ_AMQP_KEY")) options.amqp_tls.key_file = v;
    if (const char* v = env("IDEMQ_AMQP_TLS_VERIFY"))
        options.amqp_tls.verify = parse_on_off("IDEMQ_AMQP_TLS_VERIFY", v);
    if (const char* v = env("IDEMQ_AMQP_AUTH")) options.amqp_auth = detail::parse_amqp_auth(v, "IDEMQ_AMQP_AUTH");
    if (const char* v = env("IDEMQ_REQUIRE_TLS")) options.require_tls = parse_zero_one("IDEMQ_REQUIRE_TLS", v);
    if (const char* v = env("IDEMQ_CONCURRENCY")) {
        options.concurrency = static_cast<int>(parse_whole("IDEMQ_CONCURRENCY", v, 1, kMaxConcurrency));
    }
    if (const char* v = env("IDEMQ_PREFETCH")) {
        options.prefetch = static_cast<int>(parse_whole("IDEMQ_PREFETCH", v, 1, kMaxPrefetch));
    }
    if (const char* v = env("IDEMQ_SCHEMA")) options.schema = v;
    if (const char* v = env("IDEMQ_MAX_BODY_BYTES")) {
        options.max_body_bytes =
            static_cast<std::size_t>(parse_whole("IDEMQ_MAX_BODY_BYTES", v, 1, std::numeric_limits<int>::max()));
    }
    if (const char* v = env("IDEMQ_SHUTDOWN_GRACE_MS")) {
        options.shutdown_grace =
            std::chrono::milliseconds(parse_whole("IDEMQ_SHUTDOWN_GRACE_MS", v, 0, 24LL * 3600 * 1000));
    }
    if (const char* v = env("IDEMQ_HEARTBEAT_S")) {
        options.heartbeat = std::chrono::seconds(parse_whole("IDEMQ_HEARTBEAT_S", v, 1, 3600));
    }
    if (const char* v = std::getenv("IDEMQ_METRICS_ADDR")) options.metrics_address = v;
    if (const char* v = env("IDEMQ_INBOX_RETENTION"))
        options.inbox_retention = detail::parse_duration(v, "IDEMQ_INBOX_RETENTION");
    if (const char* v = env("IDEMQ_INBOX_PRUNE_INTERVAL")) {
        options.inbox_prune_interval = detail::parse_duration(v, "IDEMQ_INBOX_PRUNE_INTERVAL");
    }
    if (const char* v = env("IDEMQ_OUTBOX_RELAY")) options.outbox_relay = parse_on_off("IDEMQ_OUTBOX_RELAY", v);
    if (const char* v = env("IDEMQ_OUTBOX_NOTIFY")) options.outbox_notify = parse_on_off("IDEMQ_OUTBOX_NOTIFY", v);
    if (const char* v = env("IDEMQ_OUTBOX_MAX_ATTEMPTS")) {
        options.outbox_max_attempts = static_cast<int>(parse_whole("IDEMQ_OUTBOX_MAX_ATTEMPTS", v, 1, 1000));
    }
    if (const char* v = env("IDEMQ_OUTBOX_LEASE"))
        options.outbox_lease = detail::parse_duration(v, "IDEMQ_OUTBOX_LEASE");
    if (const char* v = env("IDEMQ_OUTBOX_RETENTION")) {
        options.outbox_retention = detail::parse_duration(v, "IDEMQ_OUTBOX_RETENTION");
    }
    if (const char* v = env("IDEMQ_CRASH_LOOP_LIMIT")) {
        options.crash_loop_limit = static_cast<int>(parse_whole("IDEMQ_CRASH_LOOP_LIMIT", v, 1, 1000));
    }
    if (const char* v = env("IDEMQ_HANDLER_WARN_MS")) {
        options.handler_warn_after =
            std::chrono::milliseconds(parse_whole("IDEMQ_HANDLER_WARN_MS", v, 1, 24LL * 3600 * 1000));
    }
    if (const char* v = env("IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS")) {
        options.idle_in_transaction_timeout =
            std::chrono::milliseconds(parse_whole("IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS", v, 0, 24LL * 3600 * 1000));
    }
    return options;
}

}  // namespace idemq
