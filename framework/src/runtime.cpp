#include "runtime.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <pqxx/nontransaction>

#include <csignal>
#include <cstdlib>

#include "database_session.hpp"
#include "log.hpp"
#include "store_sql.hpp"
#include "topology.hpp"

namespace idemq::detail {
namespace {

constexpr std::chrono::milliseconds kTickInterval{250};
constexpr std::chrono::milliseconds kRequeueDelay{1'000};
constexpr std::string_view kAttemptHeader = "x-idemq-attempt";

std::string first_line(std::string_view text) { return std::string(text.substr(0, text.find('\n'))); }

}  // namespace

Runtime::Runtime(const WorkerOptions& options, std::vector<RegisteredHandler>& handlers, SharedStats& stats)
    : options_(options), handlers_(handlers), stats_(stats), tick_(loop_), grace_(loop_) {
    // A fault point for the crash tests only: see docs/configuration.md.
    if (const char* id = std::getenv("IDEMQ_TEST_CRASH_AFTER_COMMIT")) crash_after_commit_ = id;
}

Runtime::~Runtime() {
    if (pool_) pool_->stop();
}

void Runtime::request_stop() {
    loop_.post([this] { begin_shutdown(); });
}

void Runtime::check_database() const {
    std::unique_ptr<pqxx::connection> connection;
    try {
        connection = open_database(options_.database_url, "idemq startup check");
    } catch (const pqxx::broken_connection& e) {
        throw Error(fmt::format("cannot connect to Postgres at {}: {}", redact_url(options_.database_url),
                                first_line(e.what())));
    }
    pqxx::nontransaction tx(*connection);
    const auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", inbox_table(options_.schema));
    if (!exists[0][0].as<bool>()) {
        throw Error(fmt::format("the inbox table {} does not exist in {}: run the migrate command first",
                                inbox_table(options_.schema), redact_url(options_.database_url)));
    }
}

void Runtime::connect_and_consume() {
    std::string names;
    for (const auto& registered : handlers_) names += (names.empty() ? "" : ",") + registered.route.handler;
    const auto settings = [&](std::string_view role) {
        return AmqpConnection::Settings{.url = options_.amqp_url,
                                        .connection_name = fmt::format("idemq {} {} ({})", role, names,
                                                                       process_identity()),
                                        .heartbeat = options_.heartbeat};
    };
    consumer_ = std::make_unique<AmqpConnection>(settings("consumer"));
    // Dead-letter publishes get a connection of their own: when the broker
    // blocks a publishing connection, acks on the consumer keep flowing.
    publisher_connection_ = std::make_unique<AmqpConnection>(settings("publisher"));
    publisher_ = std::make_unique<ConfirmedPublisher>(*publisher_connection_);
    for (const auto& registered : handlers_) declare_topology(*consumer_, registered.route);
    consumer_->set_prefetch(static_cast<std::uint16_t>(options_.prefetch));

    pool_ = std::make_unique<WorkerPool>(
        options_.concurrency,
        [this, names](int index) {
            return DatabaseSession(options_.database_url, options_.schema, fmt::format("idemq {} #{}", names, index));
        },
        [this](Job& job, DatabaseSession& session, const std::atomic<bool>& stopping) {
            run_job(job, session, stopping);
        });

    for (std::size_t i = 0; i < handlers_.size(); ++i) {
        handler_by_consumer_tag_.emplace(consumer_->consume(handlers_[i].route.queue), i);
    }
    consumer_watch_ = std::make_unique<SocketWatcher>(loop_, consumer_->fd(), [this] { drain_consumer(); });
    publisher_watch_ = std::make_unique<SocketWatcher>(loop_, publisher_connection_->fd(), [this] { drain_publisher(); });
}

void Runtime::run() {
    check_database();
    connect_and_consume();
    // The tick sends heartbeats (rabbitmq-c only sends them from inside its
    // own calls) and returns rolled-back deliveries to the queue.
    tick_.start(kTickInterval, kTickInterval, [this] {
        drain_consumer();
        drain_publisher();
        requeue_due();
    });
    if (options_.handle_signals) {
        signals_ = std::make_unique<SignalWatcher>(loop_, std::vector<int>{SIGINT, SIGTERM},
                                                   [this](int signum) { on_signal(signum); });
    }
    if (state_ == State::kStarting) state_ = State::kRunning;
    for (const auto& registered : handlers_) {
        log().info("consuming queue '{}' for handler '{}' (concurrency {}, prefetch {})", registered.route.queue,
                   registered.route.handler, options_.concurrency, options_.prefetch);
    }
    // Deliveries that arrived while basic.consume was answered wait in
    // rabbitmq-c's queue, not on the socket: the socket watcher won't see them.
    drain_consumer();
    loop_.run();
    pool_->stop();
    if (fatal_) std::rethrow_exception(fatal_);
}

void Runtime::run_job(Job& job, DatabaseSession& session, const std::atomic<bool>& stopping) {
    RegisteredHandler& registered = handlers_[job.handler_index];
    const Message& message = *job.message;
    Outcome outcome;
    for (;;) {
        pqxx::connection* connection = session.get(stopping);
        if (connection == nullptr) {
            outcome = {.kind = OutcomeKind::kRequeue,
                       .failure = {.reason = {}, .error = "stopped while Postgres was unreachable", .error_type = "idemq"}};
            break;
        }
        outcome = process_delivery(*connection, *registered.handler, registered.route.handler, message);
        if (outcome.kind != OutcomeKind::kRetryHere) break;
        // The database failed, not the message: no attempt is charged. Running
        // again is safe even after an in-doubt COMMIT, because the inbox claim
        // then finds the key and the delivery is acked as a duplicate.
        session.discard();
        if (outcome.in_doubt) stats_.update([](WorkerStats& s) { ++s.in_doubt; });
        log().warn("handler={} message_id={}: Postgres connection lost{} ({}); reconnecting to try again",
                   registered.route.handler, message.message_id(), outcome.in_doubt ? " during COMMIT" : "",
                   first_line(outcome.failure.error));
    }
    if (outcome.kind == OutcomeKind::kProcessed && !crash_after_commit_.empty() &&
        message.message_id() == crash_after_commit_) {
        log().critical("IDEMQ_TEST_CRASH_AFTER_COMMIT: killing the process after COMMIT of {}", message.message_id());
        std::raise(SIGKILL);
    }
    loop_.post([this, tag = job.delivery_tag, outcome = std::move(outcome)]() mutable {
        complete(tag, std::move(outcome));
    });
}

void Runtime::drain_consumer() noexcept {
    try {
        while (state_ != State::kClosed) {
            auto event = consumer_->poll_event();
            if (!event) return;
            if (auto* delivery = std::get_if<Delivery>(&*event)) {
                on_delivery(std::move(*delivery));
            } else if (auto* cancelled = std::get_if<ConsumerCancelled>(&*event); cancelled && cancelled->by_broker) {
                const auto it = handler_by_consumer_tag_.find(cancelled->consumer_tag);
                const std::string queue = it == handler_by_consumer_tag_.end() ? "?" : handlers_[it->second].route.queue;
                throw BrokerError(fmt::format("the broker cancelled the consumer of queue '{}' (deleted?)", queue), false);
            }
        }
    } catch (const std::exception& e) {
        fail(e);
    }
}

void Runtime::drain_publisher() noexcept {
    try {
        while (state_ != State::kClosed) {
            auto event = publisher_connection_->poll_event();
            if (!event) return;
            publisher_->on_event(*event);
        }
    } catch (const std::exception& e) {
        fail(e);
    }
}

void Runtime::on_delivery(Delivery delivery) {
    stats_.update([](WorkerStats& s) { ++s.received; });
    const auto handler = handler_by_consumer_tag_.find(delivery.consumer_tag);
    if (state_ != State::kRunning || handler == handler_by_consumer_tag_.end()) {
        consumer_->reject(delivery.delivery_tag, true);
        return;
    }
    const OwnedProperties& props = delivery.properties;
    const int attempt = static_cast<int>(std::max<std::int64_t>(1, props.int_header(kAttemptHeader).value_or(1)));
    auto message = std::make_shared<const Message>(Message::Fields{.body = std::move(delivery.body),
                                                                   .message_id = props.message_id(),
                                                                   .correlation_id = props.correlation_id(),
                                                                   .content_type = props.content_type(),
                                                                   .headers = props.headers_as_text(),
                                                                   .exchange = std::move(delivery.exchange),
                                                                   .routing_key = std::move(delivery.routing_key),
                                                                   .redelivered = delivery.redelivered,
                                                                   .attempt = attempt});
    const std::uint64_t tag = delivery.delivery_tag;
    in_flight_.insert_or_assign(tag, InFlight{handler->second, message, std::move(delivery.properties)});
    if (message->body().size() > options_.max_body_bytes) {
        dead_letter(tag, {.reason = std::string(reason::kTooLarge),
                          .error = fmt::format("body is {} bytes; IDEMQ_MAX_BODY_BYTES allows {}",
                                               message->body().size(), options_.max_body_bytes),
                          .error_type = "idemq"});
        return;
    }
    pool_->submit(Job{.delivery_tag = tag, .handler_index = handler->second, .message = std::move(message)});
}

void Runtime::complete(std::uint64_t tag, Outcome outcome) {
    if (state_ == State::kClosed) return;
    const auto it = in_flight_.find(tag);
    if (it == in_flight_.end()) return;
    const std::string& handler = handlers_[it->second.handler_index].route.handler;
    const Message& message = *it->second.message;
    try {
        switch (outcome.kind) {
            case OutcomeKind::kProcessed:
                stats_.update([](WorkerStats& s) { ++s.processed; });
                ack(tag);
                break;
            case OutcomeKind::kDuplicate:
                stats_.update([](WorkerStats& s) { ++s.duplicates; });
                log().info("handler={} message_id={}: duplicate delivery acked without running the handler", handler,
                           message.message_id());
                ack(tag);
                break;
            case OutcomeKind::kDeadLetter: dead_letter(tag, outcome.failure); break;
            case OutcomeKind::kRequeue:
            case OutcomeKind::kRetryHere:
                stats_.update([](WorkerStats& s) { ++s.requeued; });
                log().warn("handler={} message_id={}: rolled back, the message goes back to the queue: {}: {}", handler,
                           message.message_id(), outcome.failure.error_type, first_line(outcome.failure.error));
                requeue(tag);
                break;
        }
    } catch (const std::exception& e) {
        fail(e);
    }
}

void Runtime::dead_letter(std::uint64_t tag, const Failure& failure) {
    const InFlight& entry = in_flight_.at(tag);
    const Route& route = handlers_[entry.handler_index].route;
    const Message& message = *entry.message;
    const bool unexpected = failure.reason == reason::kKeyConflict;
    log().log(unexpected ? spdlog::level::err : spdlog::level::warn,
              "handler={} message_id={} correlation_id={}: dead-lettering to '{}': {}: {}", route.handler,
              message.message_id(), message.correlation_id(), dead_letter_queue_name(route.queue), failure.reason,
              first_line(failure.error));
    OwnedProperties properties = entry.properties.with_headers(
        dead_letter_headers(failure, {.handler = route.handler,
                                      .original_exchange = message.exchange(),
                                      .original_routing_key = message.routing_key(),
                                      .attempt = message.attempt(),
                                      .failed_at = std::chrono::system_clock::now()}));
    publisher_->publish("", dead_letter_queue_name(route.queue), std::move(properties), std::string(message.body()),
                        [this, tag, why = failure.reason](std::optional<std::string> error) {
                            if (state_ == State::kClosed) return;
                            if (error) {
                                log().error("could not dead-letter delivery {}: {}; it goes back to the queue", tag,
                                            *error);
                                requeue(tag);
                                return;
                            }
                            stats_.update([&](WorkerStats& s) { ++s.dead_lettered[why]; });
                            ack(tag);
                        });
}

void Runtime::ack(std::uint64_t tag) {
    consumer_->ack(tag);
    in_flight_.erase(tag);
    finish_if_drained();
}

void Runtime::requeue(std::uint64_t tag) {
    if (state_ == State::kRunning) {
        requeue_later_.emplace_back(std::chrono::steady_clock::now() + kRequeueDelay, tag);
        return;
    }
    consumer_->reject(tag, true);
    in_flight_.erase(tag);
    finish_if_drained();
}

void Runtime::requeue_due() {
    try {
        const auto now = std::chrono::steady_clock::now();
        while (!requeue_later_.empty() && (requeue_later_.front().first <= now || state_ != State::kRunning)) {
            const std::uint64_t tag = requeue_later_.front().second;
            requeue_later_.pop_front();
            if (state_ == State::kClosed) continue;
            consumer_->reject(tag, true);
            in_flight_.erase(tag);
        }
        finish_if_drained();
    } catch (const std::exception& e) {
        fail(e);
    }
}

void Runtime::on_signal(int signum) {
    if (state_ == State::kRunning) {
        log().info("received signal {}: finishing {} deliveries in flight (up to {} ms); send it again to exit at once",
                   signum, in_flight_.size(), options_.shutdown_grace.count());
        begin_shutdown();
        return;
    }
    log().warn("received signal {} again: exiting now; unacked deliveries return to the queue", signum);
    log().flush();
    std::_Exit(128 + signum);
}

void Runtime::begin_shutdown() {
    if (state_ != State::kRunning && state_ != State::kStarting) return;
    if (state_ == State::kStarting) {
        // Stopped before consuming started: nothing is in flight.
        state_ = State::kDraining;
        return;
    }
    state_ = State::kDraining;
    try {
        for (const auto& [consumer_tag, index] : handler_by_consumer_tag_) consumer_->cancel(consumer_tag);
        for (const Job& job : pool_->take_pending()) {
            consumer_->reject(job.delivery_tag, true);
            in_flight_.erase(job.delivery_tag);
        }
    } catch (const std::exception& e) {
        fail(e);
        return;
    }
    grace_.start(options_.shutdown_grace, std::chrono::milliseconds(0), [this] {
        log().warn("shutdown grace period over: {} deliveries still in flight return to the queue", in_flight_.size());
        finish();
    });
    requeue_due();
}

void Runtime::finish_if_drained() {
    if (state_ == State::kDraining && in_flight_.empty()) finish();
}

void Runtime::finish() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    tick_.stop();
    grace_.stop();
    signals_.reset();
    // libuv must stop polling a socket before its descriptor is closed.
    consumer_watch_.reset();
    publisher_watch_.reset();
    if (publisher_) publisher_->fail_all("the worker is shutting down");
    if (consumer_) consumer_->close();
    if (publisher_connection_) publisher_connection_->close();
    loop_.stop();
}

void Runtime::fail(const std::exception& error) {
    log().error("lost the broker connection: {}; deliveries not yet acked return to the queue", error.what());
    if (!fatal_) fatal_ = std::current_exception();
    finish();
}

}  // namespace idemq::detail
