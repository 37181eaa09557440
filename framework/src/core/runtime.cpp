#include "core/runtime.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "common/config_text.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "core/attempts.hpp"
#include "core/batch_runner.hpp"
#include "core/group_runner.hpp"
#include "core/intake.hpp"
#include "core/retry_schedule.hpp"
#include "core/startup_signals.hpp"
#include "inbox/database_session.hpp"
#include "inbox/handler_statements.hpp"
#include "inbox/schema_check.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kTickInterval{250};
// How long an ack may wait behind an open tag for the run to close (see
// docs/decisions.md, "Coalesced acks").
constexpr milliseconds kAckHold{5};

AckCoalescer::Options ack_options(const WorkerOptions& options) {
    // Half the prefetch held ready is half the window the broker will not
    // refill: ack them rather than starve the handlers.
    return {.hold = kAckHold, .pressure = static_cast<std::size_t>(std::max(1, options.prefetch / 2))};
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Runtime::Runtime(const WorkerOptions& options, std::vector<RegisteredHandler>& handlers, Telemetry& telemetry)
    : options_(options),
      handlers_(handlers),
      telemetry_(telemetry),
      faults_(FaultPoints::from_environment()),
      settlement_(
          handlers_, tiers_, telemetry_, [this] { finish_if_drained(); }, [this] { request_ack_flush(); },
          ack_options(options_)),
      tick_(loop_),
      grace_(loop_),
      ack_hold_(loop_),
      link_(loop_, options_, routes(), tiers_,
            {.delivery = [this](Delivery delivery) { on_delivery(std::move(delivery)); },
             .attached = [this](BrokerSession& session, std::uint64_t generation,
                                bool reconnected) { on_attached(session, generation, reconnected); },
             .lost = [this](const std::exception& error) { lose_broker(error); },
             .wanted = [this] { return state_ == State::kRunning; },
             .idle = [this] { finish_if_drained(); }}) {
    milliseconds longest{0};
    for (const auto& registered : handlers_) {
        if (registered.route.retry.delayed_retries > 0) longest = std::max(longest, registered.route.retry.delayed_cap);
    }
    if (longest.count() > 0) tiers_ = delay_tiers(longest);
}

Runtime::~Runtime() {
    // After the handlers: what they staged while draining is still published.
    relay_.reset();
    pruner_.reset();
    health_.reset();
    link_.join();
    if (pool_) pool_->join();
}

void Runtime::request_stop() {
    loop_.post([this] { begin_shutdown(); });
}

std::vector<Route> Runtime::routes() const {
    std::vector<Route> out;
    for (const auto& registered : handlers_) out.push_back(registered.route);
    return out;
}

void Runtime::run() {
    if (options_.handle_signals) exit_on_signal_while_starting();
    check_schema(options_.database_url, options_.schema);
    auto statements = handler_statements(handlers_);
    check_handler_statements(options_.database_url, statements);
    std::string names;
    for (const auto& registered : handlers_) names += (names.empty() ? "" : ",") + registered.route.handler;
    pool_ = std::make_unique<HandlerPool>(
        options_.concurrency,
        [this, names, statements](int index) {
            return DatabaseSession({.url = options_.database_url,
                                    .schema = options_.schema,
                                    .application_name = fmt::format("idemq {} #{}", names, index),
                                    .idle_in_transaction_timeout = options_.idle_in_transaction_timeout,
                                    .notify_relay = options_.outbox_notify,
                                    .statements = statements,
                                    .on_unreachable = [this] { loop_.post([this] { on_database_reachable(false); }); },
                                    .on_reachable = [this] { loop_.post([this] { on_database_reachable(true); }); }});
        },
        [this](Job& job, DatabaseSession& session, const std::stop_token& stop) { run_job(job, session, stop); },
        [this](std::vector<Job>& jobs, DatabaseSession& session, const std::stop_token& stop) {
            run_batch(jobs, session, stop);
        });
    // A broker that cannot be reached at start is a configuration problem
    // more often than an outage: fail fast and let the supervisor retry.
    link_.connect();
    tick_.start(kTickInterval, kTickInterval, [this] { on_tick(); });
    if (options_.handle_signals) {
        signals_ = std::make_unique<SignalWatcher>(loop_, std::vector<int>{SIGINT, SIGTERM},
                                                   [this](int signum) { on_signal(signum); });
    }
    state_ = State::kRunning;
    log().info("broker {}, database {}", redact_url(options_.amqp_url), redact_url(options_.database_url));
    health_ = std::make_unique<Health>(loop_, options_, telemetry_, [this] { return not_ready_reason(); });
    health_->start();
    metrics_port_ = health_->port();
    if (options_.inbox_prune_interval.count() > 0) pruner_ = std::make_unique<InboxPruner>(options_);
    if (options_.outbox_relay) {
        auto settings = RelaySettings::from(options_);
        settings.crash_after_confirms = faults_.relay_crash_after_confirms();
        relay_ = std::make_unique<OutboxRelay>(std::move(settings), &telemetry_);
    }
    for (const auto& registered : handlers_) {
        log().info("consuming queue '{}' for handler '{}' (concurrency {}, prefetch {}, up to {} attempts)",
                   registered.route.queue, registered.route.handler, options_.concurrency, options_.prefetch,
                   registered.route.retry.max_attempts());
    }
    loop_.run();
    link_.join();
    stop_handlers();
}

void Runtime::stop_handlers() {
    pool_->request_stop();
    if (!grace_expired_) {
        if (!shutdown_deadline_) {
            pool_->join();
            return;
        }
        // The loop may stop before the grace with handlers still running (the
        // broker went away while draining): they get the rest of the grace.
        const auto left = std::max(std::chrono::steady_clock::duration::zero(),
                                   *shutdown_deadline_ - std::chrono::steady_clock::now());
        if (pool_->join_for(std::chrono::duration_cast<milliseconds>(left) + milliseconds(1))) return;
        log().warn("shutdown grace period over: handlers are still running; their deliveries return to the queue");
        grace_over();
    }
    // The broker connections are closed (finish()): every unfinished delivery
    // is back in the queue, and the uncommitted transactions roll back.
    pool_->cancel_until_joined();
}

void Runtime::grace_over() {
    grace_expired_ = true;
    if (!options_.handle_signals || exit_watchdog_) return;
    // The worker owns the process: a handler that ignores cancellation (or a
    // cancel request that cannot reach Postgres) must not keep it alive. As
    // safe as SIGKILL: nothing unfinished was acked.
    exit_watchdog_ = std::make_unique<ExitWatchdog>(kHardExitBound, kExitHandlersStuck, [] {
        log().error(
            "handler threads did not return {} ms after the shutdown grace period; exiting with code {}: "
            "their deliveries are back in the queue",
            kHardExitBound.count(), kExitHandlersStuck);
        log().flush();
    });
}

void Runtime::on_attached(BrokerSession& session, std::uint64_t generation, bool reconnected) {
    settlement_.attach(session, generation);
    if (!reconnected) return;
    telemetry_.reconnected("broker");
    log().info("reconnected to the broker; consuming again");
    if (paused_) pause_consuming();
}

// Handler thread.
void Runtime::run_job(Job& job, DatabaseSession& session, const std::stop_token& stop) {
    post_verdict(job, handle_delivery(job, {.registered = handlers_[job.handler_index],
                                            .options = options_,
                                            .faults = faults_,
                                            .telemetry = telemetry_,
                                            .session = session,
                                            .stop = stop}));
}

// Handler thread.
void Runtime::post_verdict(const Job& job, Verdict verdict) {
    if (verdict.kind() == Verdict::Kind::kAck) faults_.at(FaultPoint::kAfterCommit, *job.message);
    loop_.post([this, tag = job.delivery_tag, generation = job.generation, verdict = std::move(verdict)] {
        complete(tag, generation, verdict);
    });
}

// Handler thread: a batch handler's batch, or a plain handler's group commit.
void Runtime::run_batch(std::vector<Job>& jobs, DatabaseSession& session, const std::stop_token& stop) {
    RegisteredHandler& registered = handlers_[jobs.front().handler_index];
    const AttemptContext context{.registered = registered,
                                 .options = options_,
                                 .faults = faults_,
                                 .telemetry = telemetry_,
                                 .session = session,
                                 .stop = stop};
    const BatchRun run{
        .registered = registered,
        .telemetry = telemetry_,
        .session = session,
        .stop = stop,
        .post = [this](const Job& job, Verdict verdict) { post_verdict(job, std::move(verdict)); },
        .run_alone = [&](Job& job) { run_job(job, session, stop); },
        .go_on_alone =
            [&](Job& job, AttemptResult first) { post_verdict(job, handle_delivery(job, context, std::move(first))); }};
    if (registered.batch != nullptr) {
        detail::run_batch(jobs, run);
    } else {
        run_group(jobs, run);
    }
}

void Runtime::on_delivery(Delivery delivery) {
    BrokerSession& broker = *link_.session();
    const auto handler = broker.handler_by_consumer_tag.find(delivery.consumer_tag);
    if (handler == broker.handler_by_consumer_tag.end()) {
        settlement_.refuse(delivery.delivery_tag);
        return;
    }
    telemetry_.received(handler->second);
    if (state_ != State::kRunning || paused_) {
        settlement_.refuse(delivery.delivery_tag);
        telemetry_.released(handler->second);
        return;
    }
    const RegisteredHandler& registered = handlers_[handler->second];
    const std::uint64_t tag = delivery.delivery_tag;
    Admission admission = admit_delivery(delivery, registered.route, tiers_, options_.max_body_bytes, now_ms());
    std::shared_ptr<const Message> message = std::move(admission.message);
    settlement_.admit(tag, handler->second, message, std::move(delivery.properties));
    if (admission.refusal) {
        settlement_.settle(tag, Verdict::dead_letter(std::move(*admission.refusal), stamp_failure(*message)));
        return;
    }
    if (admission.delay_again) {
        settlement_.delay_again(tag, *admission.delay_again);
        return;
    }
    // A redelivered message may follow a crash: it goes alone, through the
    // crash-loop guard, never inside a batch or a group.
    const bool batch = registered.batch != nullptr;
    const std::size_t shared = message->redelivered() ? 0
                               : batch                ? registered.batch_options.max_messages
                                                      : registered.route.group_commit.max_messages;
    pool_->submit(Job{.delivery_tag = tag,
                      .generation = link_.generation(),
                      .handler_index = handler->second,
                      .message = std::move(message),
                      .batch_max = shared,
                      .batch_linger = batch ? registered.batch_options.linger : registered.route.group_commit.linger});
}

void Runtime::complete(std::uint64_t tag, std::uint64_t generation, const Verdict& verdict) {
    // A delivery of a lost connection: the broker has requeued it already and
    // the inbox absorbs the copy if this one committed.
    if (state_ == State::kClosed || generation != link_.generation() || link_.session() == nullptr) return;
    try {
        settlement_.settle(tag, verdict);
    } catch (const std::exception& e) {
        lose_broker(e);
    }
}

// One flush per wakeup however many acks became due in it: the verdicts
// drained together are acked together.
void Runtime::request_ack_flush() {
    if (ack_flush_posted_) return;
    ack_flush_posted_ = true;
    loop_.post([this] {
        ack_flush_posted_ = false;
        flush_acks();
    });
}

void Runtime::flush_acks() {
    if (state_ == State::kClosed || link_.session() == nullptr) return;
    const auto now = AckCoalescer::Clock::now();
    try {
        settlement_.flush(now);
    } catch (const std::exception& e) {
        lose_broker(e);
        return;
    }
    // Acks held behind an open tag go out alone when their hold ends. The
    // timer posts rather than flushes: a flush restarts the timer, which must
    // not replace the callback it is running.
    if (const auto due = settlement_.next_flush(); due && state_ != State::kClosed) {
        const auto wait = std::chrono::ceil<milliseconds>(*due - now);
        ack_hold_.start(std::max(milliseconds(1), wait), milliseconds(0), [this] { request_ack_flush(); });
    }
}

void Runtime::on_tick() {
    link_.drain();
    settlement_.warn_slow(options_.handler_warn_after);
}

void Runtime::on_signal(int signum) {
    if (state_ == State::kRunning) {
        log().info("received signal {}: finishing {} deliveries in flight (up to {} ms); send it again to exit at once",
                   signum, settlement_.size(), options_.shutdown_grace.count());
        begin_shutdown();
        return;
    }
    log().warn("received signal {} again: exiting now; unacked deliveries return to the queue", signum);
    log().flush();
    std::_Exit(128 + signum);
}

// The runtime's half of /readyz; Health adds its database probe.
std::string Runtime::not_ready_reason() const {
    if (state_ == State::kStarting) return "starting";
    if (state_ != State::kRunning) return "shutting down";
    if (link_.session() == nullptr) return "not connected to the broker (reconnecting)";
    if (paused_) return "consumption paused: Postgres unreachable";
    return {};
}

void Runtime::on_database_reachable(bool reachable) {
    if (reachable) telemetry_.reconnected("database");
    database_down_threads_ += reachable ? -1 : 1;
    if (database_down_threads_ > 0 && !paused_) {
        pause_consuming();
    } else if (database_down_threads_ <= 0 && paused_) {
        database_down_threads_ = 0;
        resume_consuming();
    }
}

// The circuit breaker: while Postgres is unreachable no new deliveries are
// taken, and those not started go back to the queue for workers that can
// reach it. Nothing is charged.
void Runtime::pause_consuming() {
    paused_ = true;
    telemetry_.paused(true);
    telemetry_.pause_started();
    log().warn("Postgres unreachable: pausing consumption until it is back");
    if (link_.session() == nullptr || state_ != State::kRunning) return;
    try {
        stop_intake();
    } catch (const std::exception& e) {
        lose_broker(e);
    }
}

// No more deliveries from the broker, and those no handler thread has
// started go back to the queue. Throws BrokerError.
void Runtime::stop_intake() {
    link_.cancel_consumers();
    for (const Job& job : pool_->take_pending()) {
        if (job.generation == link_.generation()) settlement_.release(job.delivery_tag);
    }
}

void Runtime::resume_consuming() {
    paused_ = false;
    telemetry_.paused(false);
    log().info("Postgres reachable again: resuming consumption");
    if (link_.session() == nullptr || state_ != State::kRunning) return;
    try {
        link_.start_consumers();
    } catch (const std::exception& e) {
        lose_broker(e);
    }
}

void Runtime::lose_broker(const std::exception& error) {
    if (link_.session() == nullptr || state_ == State::kClosed) return;
    log().error("lost the broker connection: {}; {} deliveries in flight go back to the queue; reconnecting",
                first_line(error.what()), settlement_.size());
    // Everything tied to the old connection is void: its delivery tags mean
    // nothing on a new channel, so late verdicts are dropped by generation.
    settlement_.forget_all();  // first: the confirms failed next then find nothing to release
    link_.drop("the broker connection was lost");
    (void)pool_->take_pending();
    if (state_ == State::kDraining) {
        finish();
        return;
    }
    link_.reconnect_later();
}

void Runtime::begin_shutdown() {
    if (state_ == State::kDraining || state_ == State::kClosed) return;
    if (state_ == State::kStarting) {
        state_ = State::kDraining;
        return;
    }
    state_ = State::kDraining;
    link_.stop_reconnecting();
    if (link_.session() != nullptr) {
        try {
            stop_intake();
        } catch (const std::exception& e) {
            lose_broker(e);
            return;
        }
    }
    shutdown_deadline_ = std::chrono::steady_clock::now() + options_.shutdown_grace;
    grace_.start(options_.shutdown_grace, milliseconds(0), [this] {
        log().warn("shutdown grace period over: {} deliveries still in flight return to the queue", settlement_.size());
        grace_over();
        finish();
    });
    finish_if_drained();
}

void Runtime::finish_if_drained() {
    if (state_ == State::kDraining && (settlement_.empty() || link_.session() == nullptr)) finish();
}

void Runtime::finish() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    tick_.stop();
    grace_.stop();
    ack_hold_.stop();
    signals_.reset();
    if (health_) health_->stop_serving();
    settlement_.close();  // first: the confirms failed next then ack nothing
    link_.close();
    loop_.stop();
}

}  // namespace idemq::detail
