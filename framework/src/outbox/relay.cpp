// The relay: committed outbox rows → confirmed publishes → outbox_published.
#include "outbox/relay.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/binarystring>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/notification>
#include <pqxx/result>
#include <pqxx/transaction>

#include <poll.h>
#include <algorithm>

#include <array>
#include <atomic>
#include <csignal>
#include <map>

#include "amqp/dead_letter.hpp"
#include "amqp/properties.hpp"
#include "common/backoff.hpp"
#include "common/log.hpp"
#include "common/stoppable_sleep.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"
#include "inbox/retention.hpp"
#include "inbox/store_sql.hpp"
#include "outbox/doorbell.hpp"
#include "outbox/outbox_sql.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kOutagePause{1000};
constexpr milliseconds kBacklogEvery{1000};
// Pruning of outbox_published: a pass once a minute, a batch a round, and
// a short pause between batches of one pass so it never competes with
// publishing for the table for long.
constexpr std::chrono::seconds kPruneEvery{60};
constexpr milliseconds kPrunePause{20};
constexpr std::size_t kPruneBatch = 1000;

std::string relay_identity() {
    static std::atomic<int> relays{0};
    return fmt::format("{}/relay-{}", process_identity(), ++relays);
}

}  // namespace

RelaySettings RelaySettings::from(const WorkerOptions& options) {
    return {.amqp_url = options.amqp_url,
            .amqp_security = BrokerSecurity::of(options),
            .database_url = options.database_url,
            .schema = options.schema,
            .lease = options.outbox_lease,
            .max_attempts = options.outbox_max_attempts,
            .heartbeat = options.heartbeat,
            .retention = options.outbox_retention};
}

std::chrono::milliseconds longest_retry_schedule(const RelaySettings& settings) {
    return longest_backoff(settings.retry_base, settings.retry_cap, settings.max_attempts - 1);
}

struct OutboxRelay::Row {
    std::int64_t id = 0;
    std::string exchange;
    std::string routing_key;
    std::string properties;  // JSON
    std::string body;
    int attempts = 0;
    bool ordered = false;   // the head of an ordering key's lane
    bool hopeless = false;  // no retry can help: parked at once
    // Filled in by publish(): nullopt while the broker has not answered,
    // then "" when confirmed or why it was refused.
    std::optional<std::string> outcome;
};

// LISTENs on kOutboxChannel while the relay holds the lease (standbys would
// only wake to find they hold nothing). What a notification says does not
// matter, only that one came.
class OutboxRelay::Listener final : public pqxx::notification_receiver {
public:
    explicit Listener(pqxx::connection_base& connection) : notification_receiver(connection, kOutboxChannel) {}
    void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { heard_ = true; }
    bool heard() { return std::exchange(heard_, false); }

private:
    bool heard_ = false;
};

OutboxRelay::OutboxRelay(RelaySettings settings, Telemetry* telemetry)
    : settings_(std::move(settings)),
      telemetry_(telemetry),
      identity_(relay_identity()),
      prune_sql_(aged_rows_delete_sql(settings_.schema, "outbox_published", "published_at")),
      thread_([this](std::stop_token stop) { run(stop); }) {}

OutboxRelay::~OutboxRelay() = default;

void OutboxRelay::run(const std::stop_token& stop) {
    const std::stop_callback wake_on_stop(stop, [this] { wake_.ring(); });
    while (!stop.stop_requested()) {
        try {
            const bool more = round(stop);
            if (reported_outage_) {
                reported_outage_ = false;
                log().info("outbox relay: working again");
            }
            if (!more) wait_for_work();
        } catch (const std::exception& e) {
            // An outage of either side: nothing is charged, the rows stay.
            if (!reported_outage_) {
                reported_outage_ = true;
                log().warn("outbox relay: {}; retrying, no row is charged for it", first_line(e.what()));
            }
            listener_.reset();
            database_.reset();
            broker_.reset();
            in_flight_.clear();  // unanswered: published or not, they go again
            held(std::nullopt);
            sleep_unless_stopped(kOutagePause, stop);
        }
    }
    give_up_lease();
}

void OutboxRelay::wait_for_work() {
    if (listener_) {
        // libpqxx reads notifications after every statement: one may have
        // come during the round, and the socket will not show it again.
        database_->get_notifs();
        if (listener_->heard()) return;
    }
    std::array<pollfd, 2> watched{pollfd{.fd = wake_.fd(), .events = POLLIN, .revents = 0},
                                  pollfd{.fd = listener_ ? database_->sock() : -1, .events = POLLIN, .revents = 0}};
    ::poll(watched.data(), watched.size(), static_cast<int>(settings_.poll.count()));
    wake_.clear();
    if (listener_ && watched[1].revents != 0) {
        database_->get_notifs();  // throws when the connection broke: an outage
        (void)listener_->heard();
    }
}

bool OutboxRelay::round(const std::stop_token& stop) {
    if (!database_) {
        database_ = open_database(settings_.database_url, "idemq outbox relay");
        prepare_relay_statements(*database_, settings_.schema);
    }
    report_backlog();
    if (!hold_lease()) {
        drain();  // what a stale owner confirmed is fenced off, not recorded
        return false;
    }
    prune_published();
    std::list<Row> due = read_due();
    if (due.empty()) {
        if (in_flight_.empty()) {
            if (broker_) broker_->take_events();  // heartbeats while idle
            return false;
        }
        drain();
        return true;  // more may have been staged meanwhile
    }
    if (stop.stop_requested()) {
        drain();
        return false;
    }
    const bool full = due.size() == settings_.window;
    const auto first = due.begin();
    in_flight_.splice(in_flight_.end(), due);
    try {
        publish(first);
    } catch (...) {
        // What the broker answered before it went away is recorded all the
        // same; run() forgets the rest, which goes again.
        broker_.reset();
        settle_answered();
        throw;
    }
    if (full) {
        // A backlog: read the next window while the broker confirms this one.
        settle_answered();
        return true;
    }
    // All that was due is out: wait for it rather than read again for
    // nothing. A lane whose head went out may have its next row waiting,
    // so go round again at once then.
    return drain();
}

std::list<OutboxRelay::Row> OutboxRelay::read_due() {
    std::vector<long long> flying;
    flying.reserve(in_flight_.size());
    for (const auto& row : in_flight_) flying.push_back(row.id);
    std::list<Row> rows;
    pqxx::work tx(*database_);
    for (const auto& r :
         tx.exec_prepared(kRelayBatchStatement, static_cast<long long>(settings_.window), bigint_array(flying))) {
        rows.push_back({.id = r[0].as<std::int64_t>(),
                        .exchange = pqxx::binarystring(r[1]).str(),
                        .routing_key = pqxx::binarystring(r[2]).str(),
                        .properties = r[3].as<std::string>(),
                        .body = pqxx::binarystring(r[4]).str(),
                        .attempts = r[5].as<int>(),
                        .ordered = r[6].as<bool>(),
                        .outcome = std::nullopt});
    }
    tx.commit();
    return rows;
}

bool OutboxRelay::drain() {
    if (in_flight_.empty()) return false;
    if (broker_) broker_->wait_all();
    const bool lane_moved = std::any_of(in_flight_.begin(), in_flight_.end(), [](const Row& row) {
        return row.ordered && row.outcome && row.outcome->empty();
    });
    settle_answered();
    in_flight_.clear();  // none is left unanswered but after a lost connection: they go again
    return lane_moved;
}

bool OutboxRelay::hold_lease() {
    const auto now = std::chrono::steady_clock::now();
    // Renewed at a third of its life: two renewals may fail before it lapses.
    if (epoch_ && now - lease_renewed_ < settings_.lease / 3) return true;
    pqxx::work tx(*database_);
    const pqxx::result row =
        tx.exec_prepared(kRelayTakeStatement, identity_, static_cast<double>(settings_.lease.count()));
    tx.commit();
    if (row.empty()) {
        if (epoch_) log().warn("outbox relay: another relay holds the outbox now; standing by");
        held(std::nullopt);
        listener_.reset();
        return false;
    }
    if (!listener_) listener_ = std::make_unique<Listener>(*database_);
    const auto epoch = row[0][0].as<std::int64_t>();
    if (epoch_ != epoch) log().info("outbox relay {} holds the outbox (epoch {})", identity_, epoch);
    held(epoch);
    lease_renewed_ = now;
    return true;
}

void OutboxRelay::publish(std::list<Row>::iterator first) {
    const auto connect = [this] {
        broker_ = std::make_unique<BlockingPublisher>(
            AmqpConnection::Settings{.url = settings_.amqp_url,
                                     .security = settings_.amqp_security,
                                     .connection_name = fmt::format("idemq outbox relay ({})", identity_),
                                     .heartbeat = settings_.heartbeat},
            settings_.window);
        known_exchanges_.clear();
    };
    if (!broker_) connect();
    // A publish the broker refuses (to an exchange that does not exist, or
    // to one this relay's user may not write to) closes the channel, and
    // would look like a broker outage, which charges nothing: the row would
    // go round forever and hold up its lane and the window. So the first row
    // to each exchange on a connection goes alone and is waited for, and a
    // channel closed then is that row's failure. A passive declare asks about
    // a missing exchange first; it needs no permission, so only the publish
    // tells a refused one. Closing the channel loses the confirms still due
    // on it: those are waited for first.
    // Exchanges found missing or refused in this round, with why: their other
    // rows fail alike. The next round asks again, as a retry should.
    std::map<std::string, std::string> refused;
    for (auto row = first; row != in_flight_.end(); ++row) {
        if (const auto why = refused.find(row->exchange); why != refused.end()) {
            row->outcome = why->second;
            continue;
        }
        if (known_exchanges_.contains(row->exchange)) {
            (void)send(*row);
            continue;
        }
        if (broker_->outstanding() > 0) broker_->wait_all();
        if (!broker_->connection().exchange_exists(row->exchange)) {
            row->outcome = fmt::format("exchange '{}' does not exist", printable(row->exchange));
            refused.emplace(row->exchange, *row->outcome);
            connect();  // the reopened channel has no confirms
            continue;
        }
        try {
            if (!send(*row)) continue;  // unreadable: the exchange's next row goes alone instead
            broker_->wait_all();
            known_exchanges_.insert(row->exchange);
        } catch (const BrokerError& e) {
            if (e.connection_level()) throw;
            row->outcome =
                fmt::format("the broker refused the publish to exchange '{}': {}", printable(row->exchange), e.what());
            refused.emplace(row->exchange, *row->outcome);
            connect();  // the channel is closed: publish on a new connection
        }
    }
    broker_->take_events();
}

bool OutboxRelay::send(Row& row) {
    OwnedProperties properties;
    try {
        properties = OwnedProperties::from_json(nlohmann::json::parse(row.properties));
    } catch (const std::exception& e) {
        row.outcome = fmt::format("its stored properties cannot be read: {}", e.what());
        row.hopeless = true;
        return false;
    }
    Row* const published = &row;  // a list's elements stay put while others come and go
    broker_->publish(row.exchange, row.routing_key, std::move(properties), row.body,
                     [published](std::optional<std::string> error) { published->outcome = error.value_or(""); });
    return true;
}

void OutboxRelay::settle_answered() {
    std::vector<long long> confirmed;
    std::vector<const Row*> failed;
    for (const auto& row : in_flight_) {
        if (!row.outcome) continue;  // not answered yet
        if (row.outcome->empty()) {
            confirmed.push_back(row.id);
        } else {
            failed.push_back(&row);
        }
    }
    if (confirmed.empty() && failed.empty()) return;
    const auto forget_answered = [this] {
        in_flight_.remove_if([](const Row& row) { return row.outcome.has_value(); });
    };
    if (!epoch_) {
        // The lease went to another relay, which owns these rows now and
        // sends them again: nothing of them is ours to record.
        forget_answered();
        return;
    }
    if (settings_.crash_after_confirms > 0) {
        confirmed_ += confirmed.size();
        if (confirmed_ >= settings_.crash_after_confirms) {
            log().critical(
                "IDEMQ_TEST_RELAY_CRASH_AFTER_CONFIRMS: killing the process after {} confirmed rows, "
                "before they are recorded",
                confirmed_);
            log().flush();
            std::raise(SIGKILL);
        }
    }
    pqxx::work tx(*database_);
    std::size_t parked = 0;
    if (!confirmed.empty()) {
        const pqxx::result moved =
            tx.exec_prepared(kRelayDoneStatement, bigint_array(confirmed), identity_, static_cast<long long>(*epoch_));
        if (moved.affected_rows() == 0) {
            // Fenced: another relay took over meanwhile and owns these rows;
            // it publishes them again, and the receiving inbox absorbs the copies.
            log().warn("outbox relay: lost the outbox lease while publishing; standing by");
            held(std::nullopt);
        }
        if (telemetry_ != nullptr) {
            telemetry_->outbox_published(static_cast<std::size_t>(moved.affected_rows()));
            for (const auto& row : moved) telemetry_->outbox_publish_latency(row[0].as<double>());
        }
    }
    for (const Row* row : failed) {
        // Jitter: rows refused together do not come back together.
        const auto delay_ms =
            jittered(backoff_ceiling(settings_.retry_base, settings_.retry_cap, row->attempts), Jitter::kEqual, random_)
                .count();
        const pqxx::result marked =
            tx.exec_prepared(kRelayFailedStatement, row->id, bounded(*row->outcome),
                             static_cast<double>(delay_ms) / 1000.0, row->hopeless ? 0 : settings_.max_attempts);
        const bool now_parked = !marked.empty() && marked[0][0].as<bool>();
        if (now_parked) ++parked;
        log().warn("outbox relay: row {} could not be published ({}){}", row->id, first_line(*row->outcome),
                   now_parked ? fmt::format("; parked after {} attempt(s)", row->attempts + 1)
                              : fmt::format("; retrying in {} ms", delay_ms));
    }
    tx.commit();
    forget_answered();
    if (telemetry_ != nullptr) telemetry_->outbox_failed(failed.size(), parked);
}

void OutboxRelay::report_backlog() {
    const auto now = std::chrono::steady_clock::now();
    if (telemetry_ == nullptr || now - backlog_reported_ < kBacklogEvery) return;
    backlog_reported_ = now;
    pqxx::work tx(*database_);
    const pqxx::result row = tx.exec_prepared(kRelayBacklogStatement);
    tx.commit();
    telemetry_->outbox_backlog(row[0][0].as<double>(), row[0][1].as<double>(), row[0][2].as<double>());
}

void OutboxRelay::prune_published() {
    const auto now = std::chrono::steady_clock::now();
    if (now < prune_due_) return;
    std::size_t deleted = 0;
    try {
        deleted = delete_aged_batch(*database_, prune_sql_, settings_.retention, kPruneBatch);
    } catch (const std::exception& e) {
        // A lost connection is an outage like any other; anything else is
        // pruning's own failure, which must never hold up publishing.
        if (!database_->is_open()) throw;
        log().warn("outbox relay: pruning outbox_published failed, will try again in {} s: {}", kPruneEvery.count(),
                   first_line(e.what()));
        pruned_ = 0;
        prune_due_ = now + kPruneEvery;
        return;
    }
    pruned_ += deleted;
    if (deleted == kPruneBatch) {
        prune_due_ = now + kPrunePause;  // there may be more
        return;
    }
    if (pruned_ > 0) {
        log().info("outbox relay: pruned {} published rows older than {} s", pruned_, settings_.retention.count());
    }
    pruned_ = 0;
    prune_due_ = now + kPruneEvery;
}

void OutboxRelay::held(std::optional<std::int64_t> epoch) noexcept {
    epoch_ = epoch;
    if (telemetry_ != nullptr) telemetry_->outbox_lease(epoch);
}

void OutboxRelay::give_up_lease() noexcept {
    if (!epoch_ || !database_) return;
    try {
        pqxx::work tx(*database_);
        tx.exec_prepared(kRelayGiveUpStatement, identity_);
        tx.commit();
    } catch (...) {
        // It lapses by itself within one lease.
    }
    held(std::nullopt);
}

}  // namespace idemq::detail
