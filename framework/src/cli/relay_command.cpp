#include "cli/relay_command.hpp"

#include <idemq/errors.hpp>

#include <pthread.h>

#include <csignal>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "core/fault_points.hpp"
#include "inbox/schema_check.hpp"
#include "loop/event_loop.hpp"
#include "ops/health.hpp"
#include "ops/telemetry.hpp"
#include "outbox/relay.hpp"

namespace idemq::detail {

int run_relay(const WorkerOptions& options) {
    if (options.amqp_url.empty()) throw ConfigError("IDEMQ_AMQP_URL is not set");
    if (options.database_url.empty()) throw ConfigError("IDEMQ_DATABASE_URL is not set");
    options.validate();
    check_schema(options.database_url, options.schema);
    // Blocked before the relay's thread starts, so it inherits the mask and
    // the signals reach sigwait below only.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    // /metrics, /healthz and /readyz as a worker serves them
    // (IDEMQ_METRICS_ADDR), from a loop on a thread of its own: the relay's
    // lag, parked rows and lease can be scraped and alerted on.
    Telemetry telemetry({});
    EventLoop loop;
    Health health(loop, options, telemetry, [] { return std::string(); });
    health.start();
    std::thread serving([&loop] { loop.run(); });
    {
        auto settings = RelaySettings::from(options);
        settings.crash_after_confirms = FaultPoints::from_environment().relay_crash_after_confirms();
        OutboxRelay relay(std::move(settings), &telemetry);
        log().info("outbox relay {} running; SIGTERM or SIGINT stops it", relay.identity());
        int signum = 0;
        sigwait(&stop_signals, &signum);
        log().info("received signal {}: stopping the outbox relay", signum);
    }
    loop.post([&loop] { loop.stop(); });
    serving.join();
    health.stop_serving();
    return 0;
}

}  // namespace idemq::detail
