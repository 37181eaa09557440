#include <idemq/app.hpp>
#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <csignal>
#include <optional>

#include "cli/broker_flags.hpp"
#include "cli/dlq_command.hpp"
#include "cli/relay_command.hpp"
#include "cli/secret_flags.hpp"
#include "common/log.hpp"
#include "inbox/database_tls.hpp"

namespace idemq {
namespace {

// Flags that override the IDEMQ_* environment, shared by the subcommands.
struct Overrides {
    detail::BrokerFlags broker;
    std::optional<std::string> database_url;
    std::optional<int> concurrency;
    std::optional<int> prefetch;
    std::optional<std::string> schema;

    void add_database_flags(CLI::App& command) {
        command.add_option("--database-url", database_url, "Postgres URL (overrides IDEMQ_DATABASE_URL)");
        command.add_option("--schema", schema, "schema of idemq's tables (overrides IDEMQ_SCHEMA, default idemq)");
    }
    void add_broker_flags(CLI::App& command) {
        broker.add_to(command);
        command.add_option("--concurrency", concurrency, "handler threads (overrides IDEMQ_CONCURRENCY, default 4)");
        command.add_option("--prefetch", prefetch,
                           "unacked deliveries in flight (overrides IDEMQ_PREFETCH, default 32)");
    }
    void apply(WorkerOptions& options) const {
        broker.apply(options);
        if (database_url) options.database_url = *database_url;
        if (concurrency) options.concurrency = *concurrency;
        if (prefetch) options.prefetch = *prefetch;
        if (schema) options.schema = *schema;
    }
};

std::string summary(const WorkerStats& stats) {
    std::uint64_t dead = 0;
    std::string reasons;
    for (const auto& [reason, count] : stats.dead_lettered) {
        dead += count;
        reasons += fmt::format("{}{}={}", reasons.empty() ? "" : ",", reason, count);
    }
    return fmt::format(
        "received={} processed={} duplicates={} dead_lettered={}{} immediate_retries={} delayed_retries={} "
        "released={} in_doubt={} broker_reconnects={} database_pauses={} batches={}",
        stats.received, stats.processed, stats.duplicates, dead, reasons.empty() ? "" : " (" + reasons + ")",
        stats.immediate_retries, stats.delayed_retries, stats.released, stats.in_doubt, stats.broker_reconnects,
        stats.database_pauses, stats.batches);
}

// A worker holds a socket per Postgres session and broker connection; the
// common soft limit of 1024 descriptors is a relic of select(), which nothing
// here uses. Raised to the hard limit the administrator set, never beyond.
void raise_descriptor_limit() noexcept {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
        detail::log().debug("raised the open file limit from {} to {}", before, limit.rlim_cur);
    }
}

}  // namespace

int run_app(int argc, char** argv, const App& app) {
    // A peer closing a socket must surface as an error, not kill the process.
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App cli{app.description, app.name};
    cli.require_subcommand(1);
    Overrides overrides;
    CLI::App* run = cli.add_subcommand("run", "Consume messages until SIGTERM or SIGINT");
    overrides.add_broker_flags(*run);
    overrides.add_database_flags(*run);
    CLI::App* migrate = cli.add_subcommand("migrate", "Apply pending database migrations, then exit");
    overrides.add_database_flags(*migrate);
    CLI::App* relay = cli.add_subcommand("relay", "Run only the outbox relay (no consuming) until SIGTERM or SIGINT");
    overrides.broker.add_to(*relay);
    overrides.add_database_flags(*relay);
    // The dlq commands of a worker know its handlers' queues.
    std::vector<Route> routes;
    try {
        Worker probe(WorkerOptions{});
        if (app.register_handlers) app.register_handlers(probe);
        routes = probe.routes();
    } catch (const ConfigError& e) {
        fmt::print(stderr, "{}: configuration error: {}\n", app.name, e.what());
        return 2;
    }
    detail::DlqCommand dlq(cli, routes);
    CLI11_PARSE(cli, argc, argv);
    detail::scrub_secret_flags(argc, argv);

    try {
        if (dlq.parsed()) return dlq.run();
        WorkerOptions options = WorkerOptions::from_environment();
        overrides.apply(options);
        if (migrate->parsed()) {
            if (options.database_url.empty()) throw ConfigError("IDEMQ_DATABASE_URL is not set");
            if (options.require_tls) detail::require_verified_database_tls(options.database_url);
            std::vector<Migration> all = framework_migrations();
            if (app.migrations) {
                for (auto& m : app.migrations()) all.push_back(std::move(m));
            }
            const std::size_t applied = apply_migrations(options.database_url, options.schema, all);
            fmt::print("migrate: {} applied, {} already up to date\n", applied, all.size() - applied);
            return 0;
        }
        if (relay->parsed()) return detail::run_relay(options);
        raise_descriptor_limit();
        Worker worker(options);
        if (app.register_handlers) app.register_handlers(worker);
        const WorkerStats stats = worker.run();
        detail::log().info("stopped: {}", summary(stats));
        fmt::print("summary: {}\n", summary(stats));
        return 0;
    } catch (const ConfigError& e) {
        fmt::print(stderr, "{}: configuration error: {}\n", app.name, e.what());
        return 2;
    } catch (const std::exception& e) {
        detail::log().error("{}", e.what());
        return 1;
    }
}

}  // namespace idemq
