#pragma once

#include <fmt/format.h>

#include <string_view>
#include <utility>

namespace idemq {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// A logger that formats with fmt. The worker's loggers tag every line with the
/// handler, message id and correlation id; tests may implement `write` to
/// capture lines. Safe to use from the handler's thread.
class Logger {
public:
    virtual ~Logger() = default;

    [[nodiscard]] virtual bool enabled(LogLevel level) const noexcept = 0;
    virtual void write(LogLevel level, std::string_view text) = 0;

    template <class... Args>
    void debug(fmt::format_string<Args...> format, Args&&... args) {
        emit(LogLevel::kDebug, format, std::forward<Args>(args)...);
    }
    template <class... Args>
    void info(fmt::format_string<Args...> format, Args&&... args) {
        emit(LogLevel::kInfo, format, std::forward<Args>(args)...);
    }
    template <class... Args>
    void warn(fmt::format_string<Args...> format, Args&&... args) {
        emit(LogLevel::kWarn, format, std::forward<Args>(args)...);
    }
    template <class... Args>
    void error(fmt::format_string<Args...> format, Args&&... args) {
        emit(LogLevel::kError, format, std::forward<Args>(args)...);
    }

private:
    template <class... Args>
    void emit(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
        if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
    }
};

}  // namespace idemq
