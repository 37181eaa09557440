#pragma once

// The hostile-message suite: idemq's adversarial corpus, run against *your*
// handler through a real worker, your RabbitMQ and your Postgres. Link
// `idemq::testing` (a separate library: production binaries do not carry it).
// See docs/testing.md.

#include <idemq/batch_handler.hpp>
#include <idemq/handler.hpp>
#include <idemq/message.hpp>
#include <idemq/options.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace idemq::testing {

/// A valid message for the handler under test, made fresh for `unique`: a
/// token no other message of the run has. Use it for whatever your handler
/// takes its idempotency key from (the message id, or a field of the body),
/// so that every case reaches your handler instead of being a duplicate of
/// the one before. `exchange`, `routing_key`, `redelivered` and `attempt`
/// are ignored: the route decides where the message goes.
using ExampleFactory = std::function<Message::Fields(std::string_view unique)>;

/// Where one delivery of a case ended.
enum class Ending {
    kProcessed,     ///< The handler ran and its transaction committed.
    kDuplicate,     ///< The inbox knew it: acked without running the handler.
    kDeadLettered,  ///< In `<queue>.dlq`; `reason` says why.
    kUnsettled,     ///< Neither within the settle timeout: stuck, a violation.
};

[[nodiscard]] std::string_view to_string(Ending ending) noexcept;

/// One hostile case: the same bytes delivered twice, then a fresh valid
/// message to show the worker is still consuming.
struct CaseResult {
    std::string name;  ///< Stable, e.g. "message-id-nul"; see hostile_case_names().
    std::string what;  ///< What the case sends, in a sentence.
    Ending first = Ending::kUnsettled;
    std::string first_reason{};  ///< The DLQ reason when first is kDeadLettered.
    std::string first_error{};   ///< The DLQ copy's x-idemq-error, when there is one.
    Ending second = Ending::kUnsettled;
    std::string second_reason{};
};

/// What the suite found. `violations()` are broken promises: a message
/// applied twice, stuck, multiplied or lost, the broker connection torn down,
/// the worker no longer consuming. `warnings()` are handler smells that cost
/// time but lose nothing: hostile input treated as a transient failure (it
/// burns every retry before the DLQ instead of going there at once).
struct Report {
    std::vector<CaseResult> cases;
    std::vector<std::string> violations;
    std::vector<std::string> warnings;
    std::uint64_t broker_reconnects = 0;  ///< Over the whole run; anything but 0 is a violation.

    /// The case named `name`; throws std::out_of_range for an unknown name.
    [[nodiscard]] const CaseResult& at(std::string_view name) const;
    /// A table of every case and then every finding, for a test's failure output.
    [[nodiscard]] std::string to_string() const;
};

struct SuiteOptions {
    /// The worker under test: at least amqp_url and database_url, usually
    /// WorkerOptions::from_environment(). Use a scratch vhost: the suite
    /// refuses a work queue that already holds messages. Signals stay yours
    /// (handle_signals is forced off) and the metrics endpoint is turned off.
    WorkerOptions worker{};
    /// Each delivery's wait for its ending.
    std::chrono::milliseconds settle_timeout{30'000};
    /// Replace the route's retry schedule by one immediate and one 100 ms
    /// delayed retry, so a case that always fails ends within a second. Set
    /// false to run your own schedule (slow with the defaults: ~4 minutes a case).
    bool fast_retries = true;
    /// Only these cases (names from hostile_case_names()); empty runs all.
    std::vector<std::string> only{};
};

/// The names of every case, in the order they run.
[[nodiscard]] std::vector<std::string> hostile_case_names();

/// Runs every case against `handler`, consuming `route` in a worker on its
/// own thread of this process, and returns when each case has settled (or
/// the suite has given up on one that did not). The schema idemq needs is
/// migrated; your own schema must exist already. The dead-letter copies the
/// suite caused are read for the report and then removed. Throws ConfigError
/// for an unusable setup (work queue not empty, the example not processed),
/// and what Worker::run() throws when the worker cannot start.
[[nodiscard]] Report run_hostile_suite(const SuiteOptions& options, Route route, std::unique_ptr<Handler> handler,
                                       const ExampleFactory& example);

/// The same for a batch handler.
[[nodiscard]] Report run_hostile_suite(const SuiteOptions& options, Route route, std::unique_ptr<BatchHandler> handler,
                                       BatchOptions batch, const ExampleFactory& example);

}  // namespace idemq::testing
