#include "cli/relay_command.hpp"

#include <idemq/errors.hpp>

#include <pthread.h>

#include <csignal>

#include "common/log.hpp"
#include "inbox/schema_check.hpp"
#include "outbox/relay.hpp"

namespace idemq::detail {

int run_relay(const WorkerOptions& options) {
    if (options.amqp_url.empty()) throw ConfigError("IDEMQ_AMQP_URL is not set");
    if (options.database_url.empty()) throw ConfigError("IDEMQ_DATABASE_URL is not set");
    check_schema(options.database_url, options.schema);
    // Blocked before the relay's thread starts, so it inherits the mask and
    // the signals reach sigwait below only.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    {
        OutboxRelay relay(relay_settings(options), nullptr);
        log().info("outbox relay {} running; SIGTERM or SIGINT stops it", relay.identity());
        int signum = 0;
        sigwait(&stop_signals, &signum);
        log().info("received signal {}: stopping the outbox relay", signum);
    }
    return 0;
}

}  // namespace idemq::detail
