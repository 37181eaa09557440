#pragma once

namespace idemq::detail {

// Until the loop's signal watcher takes over, SIGINT or SIGTERM ends a
// worker that is still connecting (which may take seconds while a service is
// slow) with exit code 0: nothing has been handled yet, so there is nothing
// to finish, and deliveries already prefetched go back when the sockets close.
void exit_on_signal_while_starting();

}  // namespace idemq::detail
