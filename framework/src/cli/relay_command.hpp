#pragma once

#include <idemq/options.hpp>

namespace idemq::detail {

// `<worker> relay` and `idemqctl relay`: the outbox relay alone, without
// consuming, until SIGTERM or SIGINT. For deployments that run the relay
// apart from the workers (IDEMQ_OUTBOX_RELAY=off on those). Returns the exit
// code.
int run_relay(const WorkerOptions& options);

}  // namespace idemq::detail
