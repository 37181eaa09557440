#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>

namespace idemq::detail {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return spdlog::level::debug;
        case LogLevel::kInfo: return spdlog::level::info;
        case LogLevel::kWarn: return spdlog::level::warn;
        case LogLevel::kError: return spdlog::level::err;
    }
    return spdlog::level::err;
}

std::shared_ptr<spdlog::logger> make_logger() {
    auto logger = std::make_shared<spdlog::logger>("idemq", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v");
    const char* level = std::getenv("IDEMQ_LOG_LEVEL");
    logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::info);
    logger->flush_on(spdlog::level::warn);
    return logger;
}

}  // namespace

spdlog::logger& log() {
    static const std::shared_ptr<spdlog::logger> logger = make_logger();
    return *logger;
}

TaggedLogger::TaggedLogger(std::string_view handler, std::string_view message_id, std::string_view correlation_id)
    : prefix_(fmt::format("handler={} message_id={} correlation_id={}: ", handler, message_id, correlation_id)) {}

bool TaggedLogger::enabled(LogLevel level) const noexcept { return log().should_log(to_spdlog(level)); }

void TaggedLogger::write(LogLevel level, std::string_view text) {
    log().log(to_spdlog(level), "{}{}", prefix_, text);
}

}  // namespace idemq::detail
