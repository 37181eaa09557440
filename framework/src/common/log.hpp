#pragma once

#include <idemq/logger.hpp>
#include <idemq/message.hpp>

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace idemq::detail {

// The process-wide idemq logger, on stderr. IDEMQ_LOG_FORMAT picks JSON lines
// (`json`), human-readable text (`text`), or JSON unless stderr is a
// terminal (`auto`, the default); IDEMQ_LOG_LEVEL the level.
spdlog::logger& log();

// The ids every line about a message carries.
struct MessageTags {
    std::string_view handler;
    std::string_view message_id;
    std::string_view correlation_id;
};

// The message's correlation id, or its message id when it has none: what
// Context, the logs and the metrics report.
[[nodiscard]] inline std::string_view effective_correlation_id(const Message& message) noexcept {
    return message.correlation_id().empty() ? message.message_id() : message.correlation_id();
}

// What the logs of one delivery are tagged with.
[[nodiscard]] inline MessageTags tags_for(std::string_view handler, const Message& message) {
    return {handler, message.message_id(), effective_correlation_id(message)};
}

// Logs a line about one message: in JSON as the fields handler, message_id
// and correlation_id; in text as a "handler=… message_id=… correlation_id=…:"
// prefix.
void log_message(spdlog::level::level_enum level, const MessageTags& tags, std::string_view text);

template <class... Args>
void log_message(spdlog::level::level_enum level, const MessageTags& tags, fmt::format_string<Args...> format,
                 Args&&... args) {
    if (!log().should_log(level)) return;
    log_message(level, tags, std::string_view(fmt::format(format, std::forward<Args>(args)...)));
}

// The Logger handlers get through Context: every line tagged with the message.
class TaggedLogger final : public Logger {
public:
    TaggedLogger(std::string_view handler, std::string_view message_id, std::string_view correlation_id);

    [[nodiscard]] bool enabled(LogLevel level) const noexcept override;
    void write(LogLevel level, std::string_view text) override;

private:
    std::string handler_;
    std::string message_id_;
    std::string correlation_id_;
};

}  // namespace idemq::detail
