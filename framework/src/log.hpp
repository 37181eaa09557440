#pragma once

#include <idemq/logger.hpp>

#include <spdlog/spdlog.h>

#include <string>

namespace idemq::detail {

// The process-wide idemq logger (stderr; level from IDEMQ_LOG_LEVEL).
spdlog::logger& log();

// A Logger whose every line carries handler, message id and correlation id.
class TaggedLogger final : public Logger {
public:
    TaggedLogger(std::string_view handler, std::string_view message_id, std::string_view correlation_id);

    [[nodiscard]] bool enabled(LogLevel level) const noexcept override;
    void write(LogLevel level, std::string_view text) override;

private:
    std::string prefix_;
};

}  // namespace idemq::detail
