#pragma once

#include <string>
#include <vector>

namespace idemq::detail {

// A password given as --amqp-url or --database-url is readable by every
// local user (ps, /proc/PID/cmdline) for as long as the process runs.
// Call once the command line is parsed (the parser holds its own copies):
// overwrites with 'x', in place, the password bytes of those flags' values
// in argv (the whole value when it is a key=value string or does not parse),
// as mysql does, and logs a warning naming each such flag and the _FILE
// setting to use instead. Until this runs, the password is visible.
void scrub_secret_flags(int argc, char** argv);

}  // namespace idemq::detail
