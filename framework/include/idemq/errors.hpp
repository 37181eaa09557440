#pragma once

#include <stdexcept>
#include <string>

namespace idemq {

/// Base of every exception idemq throws or recognises.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A setting is missing or wrong. The message names the setting (environment
/// variable or flag), so the operator can fix it without reading code.
class ConfigError final : public Error {
public:
    using Error::Error;
};

/// Thrown by a handler when the message can never succeed (malformed body,
/// business rule violated). The transaction rolls back and the message goes to
/// the dead-letter queue at once with reason `permanent-error`.
class PermanentError : public Error {
public:
    using Error::Error;
};

/// Thrown by a handler when trying again later may succeed. The transaction
/// rolls back and the message is retried.
class TransientError : public Error {
public:
    using Error::Error;
};

/// The broker refused or failed an operation. This is the environment, not a
/// message failure: it never dead-letters a message. `connection_level()` tells
/// whether the whole connection is gone or only the channel.
class BrokerError final : public Error {
public:
    BrokerError(const std::string& what, bool connection_level) : Error(what), connection_level_(connection_level) {}
    [[nodiscard]] bool connection_level() const noexcept { return connection_level_; }

private:
    bool connection_level_;
};

}  // namespace idemq
