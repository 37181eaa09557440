#include "database_session.hpp"

#include <idemq/options.hpp>

#include <algorithm>
#include <random>
#include <thread>

#include "log.hpp"
#include "store_sql.hpp"

namespace idemq::detail {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5'000};
constexpr std::chrono::milliseconds kStopCheck{50};

}  // namespace

std::unique_ptr<pqxx::connection> open_database(const std::string& url, const std::string& application_name) {
    auto connection = std::make_unique<pqxx::connection>(url);
    // set_variable() rather than SET: libpqxx replays it if it ever
    // reactivates the connection behind our back.
    connection->set_variable("application_name", connection->quote(application_name));
    return connection;
}

DatabaseSession::DatabaseSession(std::string url, std::string schema, std::string application_name)
    : url_(std::move(url)), schema_(std::move(schema)), application_name_(std::move(application_name)) {}

std::unique_ptr<pqxx::connection> DatabaseSession::connect() {
    auto connection = open_database(url_, application_name_);
    prepare_inbox_statements(*connection, schema_);
    return connection;
}

pqxx::connection* DatabaseSession::get(const std::atomic<bool>& stopping) {
    if (connection_) return connection_.get();
    std::mt19937_64 random{std::random_device{}()};
    std::chrono::milliseconds backoff = kFirstBackoff;
    for (int attempt = 1;; ++attempt) {
        try {
            connection_ = connect();
            if (attempt > 1) log().info("reconnected to Postgres after {} attempts", attempt);
            return connection_.get();
        } catch (const pqxx::broken_connection& e) {
            if (attempt == 1 || attempt % 10 == 0) {
                log().warn("Postgres unreachable ({}); retrying with backoff, deliveries are held, not failed",
                           std::string_view(e.what()).substr(0, std::string_view(e.what()).find('\n')));
            }
        }
        // Jitter keeps a fleet of workers from reconnecting in lockstep.
        const auto sleep = std::chrono::milliseconds(
            std::uniform_int_distribution<std::int64_t>(backoff.count() / 2, backoff.count())(random));
        for (auto slept = std::chrono::milliseconds(0); slept < sleep; slept += kStopCheck) {
            if (stopping.load()) return nullptr;
            std::this_thread::sleep_for(std::min(kStopCheck, sleep - slept));
        }
        backoff = std::min(backoff * 2, kMaxBackoff);
    }
}

void DatabaseSession::discard() noexcept { connection_.reset(); }

}  // namespace idemq::detail
