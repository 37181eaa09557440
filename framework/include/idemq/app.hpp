#pragma once

#include <idemq/migration.hpp>
#include <idemq/worker.hpp>

#include <functional>
#include <string>
#include <vector>

namespace idemq {

/// A worker binary's description, for `run_app`.
struct App {
    std::string name{};         ///< Program name shown in --help.
    std::string description{};  ///< One line for --help.
    /// Registers the binary's handlers on the worker.
    std::function<void(Worker&)> register_handlers{};
    /// The binary's own schema changes, applied after the framework's by `migrate`.
    std::function<std::vector<Migration>()> migrations{};
};

/// The main of a worker binary: subcommands `run` (consume until SIGTERM) and
/// `migrate` (apply pending migrations), `--help`, settings from IDEMQ_*
/// variables overridable by flags. Returns the process exit code; a wrong
/// setting prints a message naming it and returns 2.
int run_app(int argc, char** argv, const App& app);

}  // namespace idemq
