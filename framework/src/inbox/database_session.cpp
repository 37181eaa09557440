#include "inbox/database_session.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <random>
#include <thread>

#include "common/backoff.hpp"
#include "common/config_text.hpp"
#include "common/log.hpp"
#include "common/stoppable_sleep.hpp"
#include "common/text.hpp"
#include "inbox/store_sql.hpp"
#include "outbox/outbox_sql.hpp"

namespace idemq::detail {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5'000};

}  // namespace

std::string with_connection_defaults(const std::string& url) {
    // A Postgres host that vanishes must fail our calls within seconds, not
    // after the kernel's TCP timeouts (hours): that is what lets a handler
    // thread reconnect, and a shutdown finish. Settings the URL names win.
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kDefaults{{
        {"connect_timeout", "10"},
        {"keepalives", "1"},
        {"keepalives_idle", "10"},
        {"keepalives_interval", "5"},
        {"keepalives_count", "3"},
        {"tcp_user_timeout", "30000"},
    }};
    const bool uri = url.starts_with("postgresql://") || url.starts_with("postgres://");
    std::string out = url;
    bool first_param = uri && url.find('?') == std::string::npos;
    for (const auto& [key, value] : kDefaults) {
        if (url.find(std::string(key) + "=") != std::string::npos) continue;
        if (uri) {
            out += first_param ? '?' : '&';
            first_param = false;
        } else {
            out += ' ';
        }
        out += std::string(key) + "=" + std::string(value);
    }
    return out;
}

std::unique_ptr<pqxx::connection> open_database(const std::string& url, const std::string& application_name,
                                                std::chrono::milliseconds idle_in_transaction_timeout) {
    // libpq's message for text it misreads can quote pieces of it, such as
    // the tail of a password with an unencoded '/': refused before it sees it.
    if (!url_is_well_formed(url)) {
        throw ConfigError(fmt::format("not a valid Postgres URL or connection string: {}", redact_url(url)));
    }
    auto connection = std::make_unique<pqxx::connection>(with_connection_defaults(url));
    // set_variable() rather than SET: libpqxx replays it if it ever
    // reactivates the connection behind our back.
    connection->set_variable("application_name", quote_literal(*connection, application_name));
    if (idle_in_transaction_timeout.count() > 0) {
        // A frozen worker must not hold an inbox row lock forever.
        connection->set_variable("idle_in_transaction_session_timeout",
                                 std::to_string(idle_in_transaction_timeout.count()));
    }
    return connection;
}

bool StatementCanceller::cancel() noexcept {
    std::lock_guard lock(mutex_);
    if (connection_ == nullptr) return false;
    try {
        // libpq's cancel request travels on a connection of its own
        // (PQgetCancel + PQcancel), made for calls from another thread: it
        // reads only what the connection fixed when it was opened. The mutex
        // keeps the connection alive meanwhile.
        connection_->cancel_query();
        return true;
    } catch (const std::exception& e) {
        log().warn("cannot cancel a running Postgres statement: {}", first_line(e.what()));
        return false;
    }
}

DatabaseSession::DatabaseSession(Settings settings) : settings_(std::move(settings)) {}

DatabaseSession::~DatabaseSession() { discard(); }

pqxx::connection* DatabaseSession::get(const std::stop_token& stop) {
    if (connection_) return connection_.get();
    thread_local std::mt19937_64 random{std::random_device{}()};
    for (int attempt = 1;; ++attempt) {
        try {
            auto connection =
                open_database(settings_.url, settings_.application_name, settings_.idle_in_transaction_timeout);
            prepare_inbox_statements(*connection, settings_.schema);
            prepare_outbox_statements(*connection, settings_.schema, settings_.notify_relay);
            prepare_handler_statements(*connection, settings_.statements);
            connection_ = std::move(connection);
            {
                std::lock_guard lock(canceller_->mutex_);
                canceller_->connection_ = connection_.get();
            }
            if (discarded_) {
                discarded_ = false;
                losses_while_reachable_ = attempt == 1 ? losses_while_reachable_ + 1 : 0;
            }
            if (reported_unreachable_) {
                reported_unreachable_ = false;
                log().info("reconnected to Postgres");
                if (settings_.on_reachable) settings_.on_reachable();
            }
            return connection_.get();
        } catch (const pqxx::broken_connection& e) {
            // Also reached when the server refuses new sessions while it
            // starts or shuts down.
            if (!reported_unreachable_) {
                reported_unreachable_ = true;
                log().warn("Postgres unreachable ({}); reconnecting with backoff, deliveries are held, not failed",
                           first_line(e.what()));
                if (settings_.on_unreachable) settings_.on_unreachable();
            }
        }
        // Jitter keeps a fleet of workers from reconnecting in lockstep.
        const auto sleep = jittered(backoff_ceiling(kFirstBackoff, kMaxBackoff, attempt - 1), Jitter::kEqual, random);
        if (!sleep_unless_stopped(sleep, stop)) return nullptr;
    }
}

void DatabaseSession::discard() noexcept {
    if (canceller_) {
        std::lock_guard lock(canceller_->mutex_);
        canceller_->connection_ = nullptr;
    }
    if (connection_) discarded_ = true;
    connection_.reset();
}

}  // namespace idemq::detail
