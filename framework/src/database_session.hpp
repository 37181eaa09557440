#pragma once

#include <pqxx/connection>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace idemq::detail {

// One handler thread's Postgres connection. Connects on first use and after
// discard(), with capped exponential backoff while Postgres is unreachable, so
// an outage holds the thread's delivery rather than failing it.
class DatabaseSession final {
public:
    DatabaseSession(std::string url, std::string schema, std::string application_name);

    // The live connection, connecting first when needed. Waits out an outage
    // unless `stopping` becomes true; then returns nullptr.
    [[nodiscard]] pqxx::connection* get(const std::atomic<bool>& stopping);

    // Drops the connection after it broke; the next get() reconnects.
    void discard() noexcept;

private:
    std::unique_ptr<pqxx::connection> connect();

    std::string url_;
    std::string schema_;
    std::string application_name_;
    std::unique_ptr<pqxx::connection> connection_;
};

// Opens a connection configured the way idemq needs it (application name,
// statement timeouts). Throws pqxx::broken_connection when unreachable.
[[nodiscard]] std::unique_ptr<pqxx::connection> open_database(const std::string& url,
                                                              const std::string& application_name);

}  // namespace idemq::detail
