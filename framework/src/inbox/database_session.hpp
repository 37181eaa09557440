#pragma once

#include <pqxx/connection>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "inbox/handler_statements.hpp"

namespace idemq::detail {

// Lets another thread cancel the statement a DatabaseSession's connection is
// running (a handler stuck on a lock at shutdown). Shared between the session
// and whoever may cancel; the session clears it before its connection goes.
class StatementCanceller final {
public:
    // Any thread. Asks the server to cancel the statement running now, if
    // any; false when there is no connection or the request could not be sent.
    bool cancel() noexcept;

private:
    friend class DatabaseSession;
    std::mutex mutex_;
    pqxx::connection* connection_ = nullptr;
};

// One handler thread's Postgres connection. Connects on first use and after
// discard(), with capped exponential backoff while Postgres is unreachable, so
// an outage holds the thread's delivery rather than failing it.
class DatabaseSession final {
public:
    struct Settings {
        std::string url;
        std::string schema;
        std::string application_name;
        std::chrono::milliseconds idle_in_transaction_timeout{0};  // 0: the server's default
        // Staging NOTIFYs the relays (IDEMQ_OUTBOX_NOTIFY).
        bool notify_relay = false;
        // The handlers' prepared statements, registered on every connection.
        std::vector<HandlerStatement> statements{};
        // Called on this thread when a connection attempt fails after the
        // connection was lost (or never made), and when one succeeds again.
        std::function<void()> on_unreachable{};
        std::function<void()> on_reachable{};
    };

    explicit DatabaseSession(Settings settings);
    ~DatabaseSession();
    DatabaseSession(DatabaseSession&&) noexcept = default;
    DatabaseSession& operator=(DatabaseSession&&) = delete;

    // Cancels this session's statements from another thread.
    [[nodiscard]] std::shared_ptr<StatementCanceller> canceller() const { return canceller_; }

    // The live connection, connecting first when needed. Waits out an outage
    // unless a stop is requested; then returns nullptr.
    [[nodiscard]] pqxx::connection* get(const std::stop_token& stop);

    // The connection if there is one now, without connecting.
    [[nodiscard]] pqxx::connection* current() noexcept { return connection_.get(); }

    // Drops the connection after it broke; the next get() reconnects.
    void discard() noexcept;

    // How many times in a row a discarded connection came straight back on
    // the first try: Postgres stayed reachable, so what ran on the connection
    // broke it, not an outage (a reconnection that had to wait resets it).
    [[nodiscard]] int losses_while_reachable() const noexcept { return losses_while_reachable_; }
    // Starts that count again, for the next delivery or attempt.
    void forget_losses() noexcept { losses_while_reachable_ = 0; }

private:
    Settings settings_;
    std::unique_ptr<pqxx::connection> connection_;
    std::shared_ptr<StatementCanceller> canceller_ = std::make_shared<StatementCanceller>();
    bool reported_unreachable_ = false;
    bool discarded_ = false;
    int losses_while_reachable_ = 0;
};

// `url` (libpq URI or key=value string) with idemq's connection defaults
// (connect timeout, TCP keepalives, TCP user timeout) for settings it lacks.
[[nodiscard]] std::string with_connection_defaults(const std::string& url);

// Opens a connection configured the way idemq needs it. Throws
// pqxx::broken_connection when Postgres is unreachable.
[[nodiscard]] std::unique_ptr<pqxx::connection> open_database(
    const std::string& url, const std::string& application_name,
    std::chrono::milliseconds idle_in_transaction_timeout = std::chrono::milliseconds(0));

}  // namespace idemq::detail
