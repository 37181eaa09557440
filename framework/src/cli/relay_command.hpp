#pragma once

#include <idemq/options.hpp>

namespace idemq::detail {

// `<worker> relay` and `idemqctl relay`: the outbox relay alone, without
// consuming, until SIGTERM or SIGINT. For deployments that run the relay
// apart from the workers (IDEMQ_OUTBOX_RELAY=off on those). Serves
// /metrics, /healthz and /readyz on IDEMQ_METRICS_ADDR like a worker.
// Returns the exit code.
int run_relay(const WorkerOptions& options);

}  // namespace idemq::detail
