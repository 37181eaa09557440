#pragma once

#include <idemq/options.hpp>

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "amqp/tls.hpp"

namespace idemq::detail {

// Where a command finds the broker and how it secures the connection.
struct BrokerTarget {
    std::string url;
    BrokerSecurity security;
};

// The broker flags every command that talks to RabbitMQ takes (the worker's
// run and relay, its dlq commands, idemqctl): --amqp-url and the TLS
// settings, each overriding its IDEMQ_AMQP_* variable, so a tool reaches a
// TLS-only broker exactly as the worker does.
class BrokerFlags final {
public:
    // Adds the flags to `command`; one BrokerFlags may serve several
    // subcommands, of which one is parsed.
    void add_to(CLI::App& command);

    // The flags that were given, over what `options` holds.
    void apply(WorkerOptions& options) const;

    // The environment (WorkerOptions::from_environment) with the flags over
    // it. Throws ConfigError when no URL is set or a setting is wrong.
    [[nodiscard]] BrokerTarget resolve() const;

private:
    std::optional<std::string> url_;
    std::optional<std::string> ca_file_;
    std::optional<std::string> cert_file_;
    std::optional<std::string> key_file_;
    std::optional<std::string> auth_;
    std::optional<std::string> verify_;
};

}  // namespace idemq::detail
