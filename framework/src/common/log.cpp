#include "common/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <memory>

#include "common/text.hpp"

namespace idemq::detail {
namespace {

// The tags of the line being logged on this thread, if it is about a message.
thread_local const MessageTags* current_tags = nullptr;

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return spdlog::level::debug;
        case LogLevel::kInfo: return spdlog::level::info;
        case LogLevel::kWarn: return spdlog::level::warn;
        case LogLevel::kError: return spdlog::level::err;
    }
    return spdlog::level::err;
}

// One JSON object per line: ts, level, msg, thread, and the message's ids.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        nlohmann::ordered_json line;
        line["ts"] = format_time(msg.time);
        line["level"] = std::string(spdlog::level::to_string_view(msg.level).data(),
                                    spdlog::level::to_string_view(msg.level).size());
        line["msg"] = std::string(msg.payload.data(), msg.payload.size());
        if (current_tags != nullptr) {
            line["handler"] = current_tags->handler;
            line["message_id"] = current_tags->message_id;
            line["correlation_id"] = current_tags->correlation_id;
        }
        line["thread"] = msg.thread_id;
        const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        dest.append(text.data(), text.data() + text.size());
        dest.push_back('\n');
    }
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

bool use_json() {
    const char* format = std::getenv("IDEMQ_LOG_FORMAT");
    const std::string_view choice = format != nullptr ? format : "auto";
    if (choice == "json") return true;
    if (choice == "text") return false;
    return isatty(STDERR_FILENO) == 0;
}

std::shared_ptr<spdlog::logger> make_logger() {
    auto logger = std::make_shared<spdlog::logger>("idemq", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (use_json()) {
        logger->set_formatter(std::make_unique<JsonFormatter>());
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ [%t] %v");
    }
    const char* level = std::getenv("IDEMQ_LOG_LEVEL");
    logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::info);
    logger->flush_on(spdlog::level::info);
    return logger;
}

bool json_format() {
    static const bool json = use_json();
    return json;
}

}  // namespace

spdlog::logger& log() {
    static const std::shared_ptr<spdlog::logger> logger = make_logger();
    return *logger;
}

void log_message(spdlog::level::level_enum level, const MessageTags& tags, std::string_view text) {
    if (!log().should_log(level)) return;
    if (!json_format()) {
        log().log(level, "handler={} message_id={} correlation_id={}: {}", tags.handler, tags.message_id,
                  tags.correlation_id, text);
        return;
    }
    current_tags = &tags;
    log().log(level, "{}", text);
    current_tags = nullptr;
}

TaggedLogger::TaggedLogger(std::string_view handler, std::string_view message_id, std::string_view correlation_id)
    : handler_(handler), message_id_(message_id), correlation_id_(correlation_id) {}

bool TaggedLogger::enabled(LogLevel level) const noexcept { return log().should_log(to_spdlog(level)); }

void TaggedLogger::write(LogLevel level, std::string_view text) {
    log_message(to_spdlog(level), {handler_, message_id_, correlation_id_}, text);
}

}  // namespace idemq::detail
