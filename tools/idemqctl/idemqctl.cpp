// idemqctl: operator's tool. Applies the framework's migrations, publishes
// test messages with publisher confirms, works the dead-letter queues, traces
// a message and prunes the inbox.
#include <idemq/errors.hpp>
#include <idemq/migration.hpp>
#include <idemq/options.hpp>

#include <fmt/format.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"
#include "cli/broker_flags.hpp"
#include "cli/dlq_command.hpp"
#include "cli/relay_command.hpp"
#include "cli/secret_flags.hpp"
#include "commands.hpp"
#include "common/environment_setting.hpp"

namespace {

using idemq::ConfigError;

struct PublishOptions {
    idemq::detail::BrokerFlags broker;
    std::string exchange;
    std::string routing_key;
    std::optional<std::string> message_id;
    bool no_message_id = false;
    std::string id_prefix;
    std::string correlation_id;
    std::string content_type = "application/json";
    std::vector<std::string> headers;
    std::optional<std::string> body;
    std::optional<std::string> body_file;
    int count = 1;
};

std::string env_or(const char* name, std::string fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

std::string read_body(const PublishOptions& options) {
    if (options.body) return *options.body;
    if (options.body_file) {
        std::ifstream in(*options.body_file, std::ios::binary);
        if (!in) throw ConfigError(fmt::format("--body-file: cannot read '{}'", *options.body_file));
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
    if (isatty(STDIN_FILENO) != 0) throw ConfigError("give the body with --body, --body-file or on standard input");
    std::ostringstream in;
    in << std::cin.rdbuf();
    return in.str();
}

std::string random_prefix() {
    std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{:012x}", random() & 0xFFFFFFFFFFFFULL);
}

int publish(const PublishOptions& options) {
    const idemq::detail::BrokerTarget broker = options.broker.resolve();
    if (options.count < 1) throw ConfigError("--count must be at least 1");
    if (options.message_id && options.no_message_id)
        throw ConfigError("--message-id and --no-message-id exclude each other");
    idemq::detail::HeaderList headers;
    for (const auto& header : options.headers) {
        const auto equals = header.find('=');
        if (equals == std::string::npos || equals == 0)
            throw ConfigError(fmt::format("--header wants k=v, got '{}'", header));
        headers.emplace_back(header.substr(0, equals), header.substr(equals + 1));
    }
    const std::string body = read_body(options);
    const std::string prefix = options.id_prefix.empty() ? random_prefix() : options.id_prefix;

    idemq::detail::BlockingPublisher publisher(
        {.url = broker.url, .security = broker.security, .connection_name = "idemqctl publish"});
    int confirmed = 0;
    std::vector<std::string> failures;
    for (int i = 1; i <= options.count; ++i) {
        std::string id;
        if (options.message_id) {
            id = *options.message_id;
        } else if (!options.no_message_id) {
            id = options.count == 1 && !options.id_prefix.empty() ? prefix : fmt::format("{}-{}", prefix, i);
        }
        auto properties =
            idemq::detail::OwnedProperties::make(id, options.correlation_id, options.content_type, headers);
        publisher.publish(
            options.exchange, options.routing_key, std::move(properties), body,
            [&, id](std::optional<std::string> error) {
                if (error) {
                    failures.push_back(fmt::format("{}: {}", id.empty() ? "(no message id)" : id, *error));
                } else {
                    ++confirmed;
                }
            });
    }
    // The publisher keeps at most 1000 unconfirmed: memory stays flat for any --count.
    publisher.wait_all();
    publisher.connection().close();
    for (const auto& failure : failures) fmt::print(stderr, "idemqctl: not published: {}\n", failure);
    fmt::print("published {} message(s) to exchange '{}' with routing key '{}', confirmed by the broker\n", confirmed,
               options.exchange, options.routing_key);
    return failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App cli{"idemq operator's tool", "idemqctl"};
    cli.require_subcommand(1);

    std::string database_url;
    std::string schema = env_or("IDEMQ_SCHEMA", "idemq");
    CLI::App* migrate = cli.add_subcommand("migrate", "Apply idemq's own pending migrations (the inbox), then exit");
    migrate->add_option("--database-url", database_url, "Postgres URL (default: IDEMQ_DATABASE_URL)");
    migrate->add_option("--schema", schema, "schema of idemq's tables (default: IDEMQ_SCHEMA or idemq)");

    PublishOptions publish_options;
    CLI::App* publish_command = cli.add_subcommand("publish", "Publish persistent messages with publisher confirms");
    publish_options.broker.add_to(*publish_command);
    publish_command->add_option("--exchange", publish_options.exchange, "exchange (default: the default exchange)");
    publish_command->add_option("--routing-key", publish_options.routing_key, "routing key")->required();
    publish_command->add_option("--message-id", publish_options.message_id,
                                "message id for every message (default: generated, unique per message)");
    publish_command->add_flag("--no-message-id", publish_options.no_message_id, "publish without a message id");
    publish_command->add_option("--id-prefix", publish_options.id_prefix, "prefix of generated message ids");
    publish_command->add_option("--correlation-id", publish_options.correlation_id, "correlation id");
    publish_command->add_option("--content-type", publish_options.content_type, "content type")->capture_default_str();
    publish_command->add_option("--header", publish_options.headers, "header k=v (repeatable)");
    auto* body = publish_command->add_option("--body", publish_options.body, "message body");
    publish_command->add_option("--body-file", publish_options.body_file, "read the body from a file")->excludes(body);
    publish_command->add_option("--count", publish_options.count, "how many messages to publish")
        ->capture_default_str();

    CLI::App* relay = cli.add_subcommand("relay", "Run the outbox relay until SIGTERM or SIGINT (settings: IDEMQ_*)");

    idemq::detail::DlqCommand dlq(cli, {});
    idemqctl::TraceCommand trace(cli);
    idemqctl::InboxCommand inbox(cli);
    idemqctl::OutboxCommand outbox(cli);
    CLI11_PARSE(cli, argc, argv);
    idemq::detail::scrub_secret_flags(argc, argv);
    try {
        if (dlq.parsed()) return dlq.run();
        if (trace.parsed()) return trace.run();
        if (inbox.parsed()) return inbox.run();
        if (outbox.parsed()) return outbox.run();
        if (relay->parsed()) return idemq::detail::run_relay(idemq::WorkerOptions::from_environment());
        if (migrate->parsed()) {
            if (database_url.empty()) {
                database_url = idemq::detail::setting_from_environment("IDEMQ_DATABASE_URL").value_or("");
            }
            if (database_url.empty()) throw ConfigError("IDEMQ_DATABASE_URL (or --database-url) is not set");
            const auto migrations = idemq::framework_migrations();
            const std::size_t applied = idemq::apply_migrations(database_url, schema, migrations);
            fmt::print("migrate: {} applied, {} already up to date\n", applied, migrations.size() - applied);
            return 0;
        }
        return publish(publish_options);
    } catch (const ConfigError& e) {
        fmt::print(stderr, "idemqctl: configuration error: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "idemqctl: {}\n", e.what());
        return 1;
    }
}
