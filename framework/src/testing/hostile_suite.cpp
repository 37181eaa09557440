// The hostile-message suite: the corpus of hostile_corpus.cpp delivered one
// case at a time to a real worker. Cases run strictly one after another, so
// the change in the worker's counters while a case is in flight says where
// that case ended; the dead-letter copies arrive in the same order.
#include <idemq/testing.hpp>

#include <idemq/errors.hpp>
#include <idemq/migration.hpp>
#include <idemq/worker.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>

#include "amqp/dead_letter.hpp"
#include "amqp/dead_letter_view.hpp"
#include "amqp/topology.hpp"
#include "testing/hostile_corpus.hpp"
#include "testing/raw_publisher.hpp"
#include "testing/worker_thread.hpp"

namespace idemq::testing {

std::vector<std::string> hostile_case_names() {
    std::vector<std::string> names;
    for (const auto& c : detail::hostile_cases()) names.push_back(c.name);
    return names;
}

namespace {

using namespace std::chrono_literals;
using detail::WireMessage;

using Registration = std::function<void(Worker&, const Route&)>;

std::uint64_t settled(const WorkerStats& stats) {
    return std::accumulate(stats.dead_lettered.begin(), stats.dead_lettered.end(), stats.processed + stats.duplicates,
                           [](std::uint64_t sum, const auto& entry) { return sum + entry.second; });
}

// A case the broker did not take: nothing of it reached the worker.
class CaseNotSent final : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Where one delivery ended, from the counters before and after it.
struct Settlement {
    Ending ending = Ending::kUnsettled;
    std::string reason;
};

Settlement compare(const WorkerStats& before, const WorkerStats& after) {
    if (after.processed > before.processed) return {Ending::kProcessed, {}};
    if (after.duplicates > before.duplicates) return {Ending::kDuplicate, {}};
    for (const auto& [reason, count] : after.dead_lettered) {
        const auto it = before.dead_lettered.find(reason);
        if (count > (it == before.dead_lettered.end() ? 0 : it->second)) return {Ending::kDeadLettered, reason};
    }
    return {};
}

bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

class Suite final {
public:
    Suite(const SuiteOptions& options, Route route, const Registration& add, const ExampleFactory& example)
        : options_(options), route_(std::move(route)), add_(add), example_(example) {
        options_.worker.metrics_address.clear();
        options_.worker.validate();
        if (options_.fast_retries) {
            route_.retry = {.immediate_retries = 1,
                            .immediate_backoff = 10ms,
                            .delayed_retries = 1,
                            .delayed_base = 100ms,
                            .delayed_cap = 100ms,
                            .jitter = false,
                            .unknown_errors_are_permanent = route_.retry.unknown_errors_are_permanent};
        }
        queue_ = route_.queue.empty() ? route_.handler : route_.queue;
        dlq_ = detail::dead_letter_queue_name(queue_);
        // Through the route's exchange, as in production; a headers exchange
        // routes on headers the cases change, so go straight to the queue.
        if (!route_.exchange.empty() && route_.exchange_type != ExchangeType::kHeaders) {
            exchange_ = route_.exchange;
            routing_key_ = route_.routing_keys.empty() ? std::string() : route_.routing_keys.front();
        } else {
            routing_key_ = queue_;
        }
        std::random_device random;
        nonce_ = fmt::format("{:08x}", std::uniform_int_distribution<std::uint32_t>()(random));
    }

    Report run() {
        apply_migrations(options_.worker.database_url, options_.worker.schema, framework_migrations());
        detail::RawPublisher publisher(options_.worker.amqp_url, detail::BrokerSecurity::of(options_.worker));
        frame_max_ = static_cast<std::size_t>(std::max(publisher.connection().frame_max(), 0));
        // Queue inspection on a connection of its own: asking after a queue
        // that does not exist yet reopens the channel, out of confirm mode.
        detail::AmqpConnection broker({.url = options_.worker.amqp_url,
                                       .security = detail::BrokerSecurity::of(options_.worker),
                                       .connection_name = "idemq hostile suite",
                                       .heartbeat = std::chrono::seconds(0)});
        if (const auto counts = broker.inspect_queue(queue_); counts && counts->messages > 0) {
            throw ConfigError(
                fmt::format("the hostile suite needs an empty work queue, and '{}' holds {} messages: "
                            "run it against a scratch vhost",
                            queue_, counts->messages));
        }
        const auto dlq_counts = broker.inspect_queue(dlq_);
        dead_letters_before_ = dlq_counts ? dlq_counts->messages : 0;

        detail::WorkerThread worker(options_.worker, [this](Worker& w) { add_(w, route_); });
        const bool consuming = wait_for(
            [&] {
                if (worker.failed()) return true;
                const auto counts = broker.inspect_queue(queue_);
                return counts && counts->consumers > 0;
            },
            options_.settle_timeout);
        if (worker.failed()) worker.stop();  // rethrows why it could not start
        if (!consuming) throw ConfigError(fmt::format("the worker did not start consuming '{}'", queue_));

        for (const auto& hostile : selected()) {
            if (!run_case(publisher, worker, *hostile)) break;
        }
        check_totals(broker, worker);
        report_.broker_reconnects = worker.stats().broker_reconnects;
        if (report_.broker_reconnects > 0) {
            report_.violations.push_back(
                fmt::format("the worker reconnected to the broker {} time(s): a message took the connection down",
                            report_.broker_reconnects));
        }
        try {
            worker.stop();
        } catch (const std::exception& e) {
            report_.violations.push_back(fmt::format("the worker failed: {}", e.what()));
        }
        collect_dead_letters();
        return std::move(report_);
    }

private:
    [[nodiscard]] std::vector<const detail::HostileCase*> selected() const {
        std::vector<const detail::HostileCase*> cases;
        for (const auto& hostile : detail::hostile_cases()) {
            // The baseline always runs: it proves the example works.
            const bool wanted =
                options_.only.empty() || hostile.name == "baseline" ||
                std::find(options_.only.begin(), options_.only.end(), hostile.name) != options_.only.end();
            if (wanted) cases.push_back(&hostile);
        }
        for (const auto& name : options_.only) {
            const auto known = std::any_of(cases.begin(), cases.end(), [&](const auto* c) { return c->name == name; });
            if (!known) throw ConfigError(fmt::format("no hostile case named '{}'", name));
        }
        return cases;
    }

    [[nodiscard]] detail::CaseInput input(const std::string& unique) const {
        return {.example = example_(unique),
                .frame_max = frame_max_,
                .max_body_bytes = options_.worker.max_body_bytes,
                .queue = queue_};
    }

    // Publishes `message` and waits until the worker has settled one more delivery.
    Settlement deliver(detail::RawPublisher& publisher, const detail::WorkerThread& worker, const WireMessage& message,
                       const std::string& case_name) {
        const WorkerStats before = worker.stats();
        std::optional<std::string> refused;
        try {
            refused = publisher.publish(exchange_, routing_key_, message.properties, message.body);
        } catch (const BrokerError& e) {
            throw BrokerError(fmt::format("publishing hostile case '{}': {}", case_name, e.what()),
                              e.connection_level());
        }
        if (refused) throw CaseNotSent(*refused);
        ++published_;
        Settlement result;
        wait_for(
            [&] {
                result = compare(before, worker.stats());
                return result.ending != Ending::kUnsettled;
            },
            options_.settle_timeout);
        if (result.ending == Ending::kDeadLettered) ++dead_lettered_;
        return result;
    }

    // False when the suite cannot go on: a delivery did not settle, so the
    // counters no longer tell the cases apart.
    bool run_case(detail::RawPublisher& publisher, const detail::WorkerThread& worker,
                  const detail::HostileCase& hostile) {
        const std::string unique = fmt::format("hostile-{}-{}", nonce_, ++sequence_);
        const auto in = input(unique);
        CaseResult result{.name = hostile.name, .what = hostile.what};
        Settlement first;
        try {
            first = deliver(publisher, worker, hostile.build(in), hostile.name);
        } catch (const CaseNotSent& e) {
            // Nothing reached the worker: report it and go on with the next case.
            report_.violations.push_back(
                fmt::format("{}: the broker did not take the message: {}", hostile.name, e.what()));
            return true;
        }
        result.first = first.ending;
        result.first_reason = first.reason;
        if (hostile.name == "baseline" && first.ending != Ending::kProcessed) {
            throw ConfigError(
                fmt::format("the example message was not processed (it ended {}{}): the suite needs an "
                            "example your handler accepts",
                            to_string(first.ending), first.reason.empty() ? "" : " as " + first.reason));
        }
        if (first.ending == Ending::kUnsettled) {
            report_.violations.push_back(
                fmt::format("{}: not settled within {} ms (stuck)", hostile.name, options_.settle_timeout.count()));
            report_.cases.push_back(std::move(result));
            return false;
        }
        const Settlement second = deliver(publisher, worker, hostile.build(in), hostile.name);
        result.second = second.ending;
        result.second_reason = second.reason;
        judge(result);
        report_.cases.push_back(std::move(result));
        if (second.ending == Ending::kUnsettled) {
            report_.violations.push_back(fmt::format("{}: the second delivery was not settled within {} ms (stuck)",
                                                     hostile.name, options_.settle_timeout.count()));
            return false;
        }
        // A fresh valid message: the worker is still consuming.
        const Settlement canary =
            deliver(publisher, worker, detail::plain_message(example_(unique + "-canary")), hostile.name + " canary");
        if (canary.ending != Ending::kProcessed && canary.ending != Ending::kDuplicate) {
            report_.violations.push_back(fmt::format("after {}: a valid message was not processed ({}{})", hostile.name,
                                                     to_string(canary.ending),
                                                     canary.reason.empty() ? "" : ", " + canary.reason));
            return false;  // the counters would no longer tell the cases apart
        }
        return true;
    }

    void judge(const CaseResult& result) {
        if (result.first == Ending::kProcessed && result.second == Ending::kProcessed) {
            report_.violations.push_back(fmt::format(
                "{}: applied twice: the same bytes were processed again, so the idempotency key differed between "
                "two identical deliveries (idempotency_key() must depend on the message only)",
                result.name));
        }
        for (const auto* reason : {&result.first_reason, &result.second_reason}) {
            if (*reason == detail::reason::kRetriesExhausted) {
                report_.warnings.push_back(fmt::format(
                    "{}: ended as {} after every retry: the handler treats this input as a transient failure; throw "
                    "idemq::PermanentError for input that can never succeed",
                    result.name, *reason));
                break;
            }
        }
    }

    // Everything published was settled once, and nothing more arrived: no
    // copy multiplied, nothing was left in the queue.
    void check_totals(detail::AmqpConnection& broker, const detail::WorkerThread& worker) {
        // A copy that multiplied would arrive a moment after its case settled.
        std::this_thread::sleep_for(500ms);
        const std::uint64_t total = settled(worker.stats());
        if (total > published_) {
            report_.violations.push_back(fmt::format(
                "{} deliveries settled for {} messages published: a message multiplied", total, published_));
        }
        const auto left = broker.inspect_queue(queue_);
        if (left && left->messages > 0) {
            report_.violations.push_back(fmt::format("{} message(s) left in '{}'", left->messages, queue_));
        }
        const auto dlq = broker.inspect_queue(dlq_);
        const std::uint64_t copies =
            (dlq ? dlq->messages : 0) - std::min<std::uint64_t>(dead_letters_before_, dlq ? dlq->messages : 0);
        if (copies != dead_lettered_) {
            report_.violations.push_back(
                fmt::format("{} message(s) in '{}' for {} dead-lettered deliveries", copies, dlq_, dead_lettered_));
        }
    }

    // Reads the dead-letter copies this run caused, in the order they were
    // dead-lettered, into the report, and removes them. Copies that were in
    // the queue before stay: they are returned when the connection closes.
    void collect_dead_letters() {
        detail::AmqpConnection reader({.url = options_.worker.amqp_url,
                                       .security = detail::BrokerSecurity::of(options_.worker),
                                       .connection_name = "idemq hostile suite",
                                       .heartbeat = std::chrono::seconds(0)});
        for (std::uint32_t skipped = 0; skipped < dead_letters_before_; ++skipped) {
            if (!reader.get(dlq_)) return;
        }
        for (auto& result : report_.cases) {
            for (const auto* ending : {&result.first, &result.second}) {
                if (*ending != Ending::kDeadLettered) continue;
                const auto copy = reader.get(dlq_);
                if (!copy) return;
                if (ending == &result.first) result.first_error = detail::view_of(*copy).error;
                reader.ack(copy->delivery_tag);
            }
            // Canaries were processed, never dead-lettered: nothing of theirs is here.
        }
    }

    SuiteOptions options_;
    Route route_;
    Registration add_;
    ExampleFactory example_;
    std::string queue_;
    std::string dlq_;
    std::string exchange_;
    std::string routing_key_;
    std::string nonce_;
    std::size_t frame_max_ = 0;
    int sequence_ = 0;
    std::uint32_t dead_letters_before_ = 0;
    std::uint64_t published_ = 0;
    std::uint64_t dead_lettered_ = 0;
    Report report_;
};

}  // namespace

Report run_hostile_suite(const SuiteOptions& options, Route route, std::unique_ptr<Handler> handler,
                         const ExampleFactory& example) {
    if (!handler) throw ConfigError("run_hostile_suite: the handler is null");
    // The worker is built once, so the registration runs once and may move the handler.
    return Suite(
               options, std::move(route),
               [&handler](Worker& worker, const Route& r) { worker.add_handler(r, std::move(handler)); }, example)
        .run();
}

Report run_hostile_suite(const SuiteOptions& options, Route route, std::unique_ptr<BatchHandler> handler,
                         BatchOptions batch, const ExampleFactory& example) {
    if (!handler) throw ConfigError("run_hostile_suite: the handler is null");
    return Suite(
               options, std::move(route),
               [&handler, batch](Worker& worker, const Route& r) {
                   worker.add_batch_handler(r, std::move(handler), batch);
               },
               example)
        .run();
}

}  // namespace idemq::testing
