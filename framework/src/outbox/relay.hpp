#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <thread>

#include <idemq/options.hpp>

#include <pqxx/connection>

#include "amqp/confirmed_publisher.hpp"
#include "ops/telemetry.hpp"
#include "outbox/doorbell.hpp"

namespace idemq::detail {

struct RelaySettings {
    std::string amqp_url{};
    BrokerSecurity amqp_security{};
    std::string database_url{};
    std::string schema = "idemq";
    // Publishes in flight at once, and rows read per round.
    std::size_t window = 1000;
    // How often the relay looks for rows staged by other processes (its own
    // process rings the doorbell).
    std::chrono::milliseconds poll{250};
    // How long a lease lasts unrenewed: a dead owner's rows are taken over
    // after at most this long.
    std::chrono::seconds lease{5};
    // Failed publishes of a row before it is parked.
    int max_attempts = 10;
    // Retry delays after a failed publish: doubling from `retry_base`, at most `retry_cap`.
    std::chrono::milliseconds retry_base{1000};
    std::chrono::milliseconds retry_cap{300'000};
    std::chrono::seconds heartbeat{30};
    // Published rows older than this are deleted by the lease holder.
    std::chrono::seconds retention{7 * 24 * 3600};

    // Crash tests only: SIGKILL the process once this many rows were
    // confirmed, before they are recorded (0: never). See FaultPoints.
    std::size_t crash_after_confirms = 0;

    // The relay a worker's options describe (in a worker and standalone alike).
    [[nodiscard]] static RelaySettings from(const WorkerOptions& options);
};

// The longest a refused row goes on being retried: the sum of the waits
// between its first and its last attempt (max_attempts − 1 of them), with
// the backoff the relay uses. A copy published at the last attempt may be
// the first to reach the receiver, this long after the first try.
[[nodiscard]] std::chrono::milliseconds longest_retry_schedule(const RelaySettings& settings);

// What inbox retention must exceed beyond that schedule (Worker::run checks
// it): the wait before a row's first attempt, i.e. relay lag and outages,
// which an operator is alerted to within minutes (IdemqOutboxRelayLagging)
// and is expected to have dealt with within the hour.
inline constexpr std::chrono::hours kRelayRetentionMargin{1};

// Publishes committed outbox rows with publisher confirms, at least once,
// and moves each confirmed row to outbox_published. One relay at a time
// holds the outbox's lease; others wait to take over. Runs on a thread of
// its own, with its own Postgres connection and, while there is work, its
// own broker connection: neither is the worker's. A database or broker
// outage is waited out and charges no row; a publish the broker refuses
// (returned, nacked, no such exchange, no permission to write to it) is
// retried with backoff and parked after `max_attempts`. The lease holder also prunes outbox_published past
// `retention`, one bounded batch per round, so pruning never holds up
// publishing for longer than one small DELETE.
class OutboxRelay final {
public:
    OutboxRelay(RelaySettings settings, Telemetry* telemetry);
    // Stops, lets the lease go so another relay takes over at once, joins:
    // thread_, a jthread and the last member, asks its run() to stop (which
    // gives up the lease on the way out) and joins before anything run()
    // uses is destroyed.
    ~OutboxRelay();  // = default, where Listener is complete
    OutboxRelay(const OutboxRelay&) = delete;
    OutboxRelay& operator=(const OutboxRelay&) = delete;

    // Who this relay is in outbox_lease and outbox_published.
    [[nodiscard]] const std::string& identity() const noexcept { return identity_; }

private:
    struct Row;
    class Listener;
    void run(const std::stop_token& stop);
    // One round: reads the rows due that are not in flight, publishes them
    // and records what the broker has answered so far, so the broker
    // confirms one window while the relay reads and records around it.
    // True when there may be more to do at once.
    bool round(const std::stop_token& stop);
    [[nodiscard]] bool hold_lease();
    [[nodiscard]] std::list<Row> read_due();
    // Publishes the rows of in_flight_ from `first` on.
    void publish(std::list<Row>::iterator first);
    // Publishes one row; false when it cannot be (its outcome says why).
    [[nodiscard]] bool send(Row& row);
    // Records the answered rows of in_flight_ (moved, or charged an
    // attempt) and forgets them; unanswered ones stay in flight.
    void settle_answered();
    // Waits for every answer, records them, and forgets what is in flight.
    // True when the head of an ordered lane went out: its next row may be due.
    bool drain();
    // Until this process stages rows, another one NOTIFYs, or the poll passes.
    void wait_for_work();
    void report_backlog();
    void prune_published();
    void give_up_lease() noexcept;
    // Records whether (and in which epoch) this relay holds the lease.
    void held(std::optional<std::int64_t> epoch) noexcept;

    RelaySettings settings_;
    Telemetry* telemetry_;
    std::string identity_;
    std::unique_ptr<pqxx::connection> database_;
    std::unique_ptr<Listener> listener_;  // while holding the lease
    std::unique_ptr<BlockingPublisher> broker_;
    // Published and not yet recorded: their confirms may still be coming.
    std::list<Row> in_flight_;
    // Exchanges known to exist on the current broker connection.
    std::set<std::string> known_exchanges_;
    std::optional<std::int64_t> epoch_;
    std::chrono::steady_clock::time_point lease_renewed_{};
    std::chrono::steady_clock::time_point backlog_reported_{};
    std::string prune_sql_;
    std::chrono::steady_clock::time_point prune_due_{};
    std::size_t pruned_ = 0;  // in the current pass
    bool reported_outage_ = false;
    std::size_t confirmed_ = 0;  // by the broker, over the relay's life
    WakeUp wake_;
    OutboxDoorbell::Subscription doorbell_{wake_};
    std::mt19937_64 random_{std::random_device{}()};
    std::jthread thread_;  // last: starts once everything above exists, and is joined first
};

}  // namespace idemq::detail
