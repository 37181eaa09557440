#pragma once

// For users' own handler tests. Link `idemq::testing` (a separate library:
// production binaries do not carry it). See docs/testing.md.
//  - FakeContext and make_message(): call a handler directly in a unit test;
//  - run_hostile_suite(): idemq's adversarial corpus, run against your
//    handler through a real worker, your RabbitMQ and your Postgres.

#include <idemq/batch_handler.hpp>
#include <idemq/context.hpp>
#include <idemq/handler.hpp>
#include <idemq/logger.hpp>
#include <idemq/message.hpp>
#include <idemq/options.hpp>

#include <pqxx/types>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace idemq::testing {

/// A Logger that keeps every line, for assertions in handler tests.
class CapturingLogger final : public Logger {
public:
    struct Line {
        LogLevel level;
        std::string text;
    };
    [[nodiscard]] bool enabled(LogLevel) const noexcept override { return true; }
    void write(LogLevel level, std::string_view text) override { lines.push_back({level, std::string(text)}); }

    std::vector<Line> lines;
};

/// An Outbox that keeps what a handler staged, as it was given, for a unit
/// test to check. Unlike the real one it keeps them when the handler throws.
class CapturingOutbox final : public Outbox {
public:
    void publish(OutgoingMessage message) override { messages.push_back(std::move(message)); }

    std::vector<OutgoingMessage> messages;
};

/// The Context a handler gets, for calling `handle()` directly in a unit
/// test: the ids and attempt come from the message (the key is its message
/// id unless set), the trace context from its `traceparent` / `tracestate`
/// headers; log lines are kept in `logger`, staged messages in `staged`.
/// Not thread-safe.
class FakeContext final : public Context {
public:
    explicit FakeContext(const Message& message, std::string handler_name = "test",
                         std::optional<std::string> idempotency_key = std::nullopt)
        : message_(message),
          handler_name_(std::move(handler_name)),
          key_(idempotency_key ? std::move(*idempotency_key) : std::string(message.message_id())) {}

    [[nodiscard]] std::string_view handler_name() const noexcept override { return handler_name_; }
    [[nodiscard]] std::string_view message_id() const noexcept override { return message_.message_id(); }
    [[nodiscard]] std::string_view correlation_id() const noexcept override {
        return message_.correlation_id().empty() ? message_.message_id() : message_.correlation_id();
    }
    [[nodiscard]] std::string_view idempotency_key() const noexcept override { return key_; }
    [[nodiscard]] int attempt() const noexcept override { return message_.attempt(); }
    [[nodiscard]] std::string_view trace_parent() const noexcept override {
        return message_.header("traceparent").value_or("");
    }
    [[nodiscard]] std::string_view trace_state() const noexcept override {
        return message_.header("tracestate").value_or("");
    }
    [[nodiscard]] Logger& log() noexcept override { return logger; }
    [[nodiscard]] Outbox& outbox() override { return staged; }

    CapturingLogger logger;
    CapturingOutbox staged;

private:
    const Message& message_;
    std::string handler_name_;
    std::string key_;
};

/// Registers the statements `handler.prepare()` defines on `tx`'s
/// connection, as the worker does on each of its own, so a unit test can call
/// `handle()` with a transaction of its test database. Throws ConfigError as
/// `Worker::add_handler` would for a bad definition.
void prepare_statements(Handler& handler, pqxx::transaction_base& tx);
/// The same for a batch handler.
void prepare_statements(BatchHandler& handler, pqxx::transaction_base& tx);

/// A message as a handler would see its delivery: `fields` with a message id
/// ("test-1") and content type ("application/json") filled in when empty.
[[nodiscard]] inline Message make_message(Message::Fields fields) {
    if (fields.message_id.empty()) fields.message_id = "test-1";
    if (fields.content_type.empty()) fields.content_type = "application/json";
    return Message(std::move(fields));
}

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
