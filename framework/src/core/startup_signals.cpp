#include "core/startup_signals.hpp"

#include <unistd.h>

#include <csignal>

namespace idemq::detail {

void exit_on_signal_while_starting() {
    struct sigaction action {};
    // Only async-signal-safe calls: write(2) and _exit(2).
    action.sa_handler = [](int) {
        static constexpr char kLine[] =
            "{\"level\":\"info\",\"msg\":\"stop requested while starting: nothing was consumed yet; exiting\"}\n";
        (void)!write(STDERR_FILENO, kLine, sizeof kLine - 1);
        _exit(0);
    };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

}  // namespace idemq::detail
