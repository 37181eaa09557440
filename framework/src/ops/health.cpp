#include "ops/health.hpp"

#include <idemq/errors.hpp>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>

#include "common/log.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"

namespace idemq::detail {

Health::Health(EventLoop& loop, const WorkerOptions& options, Telemetry& telemetry, NotReady not_ready)
    : loop_(loop), options_(options), telemetry_(telemetry), not_ready_(std::move(not_ready)) {}

void Health::start() {
    if (!options_.metrics_address.empty()) {
        try {
            http_ = std::make_unique<HttpServer>(
                loop_, options_.metrics_address,
                [this](const std::string& method, const std::string& path) { return serve(method, path); });
            port_ = http_->port();
            log().info("metrics and health checks on http://{}:{}/ (/metrics, /healthz, /readyz)",
                       options_.metrics_address.substr(0, options_.metrics_address.rfind(':')), http_->port());
            if (!http_->loopback_only()) {
                // Explicit addresses are used as given; say once, loudly, what that means.
                log().warn(
                    "IDEMQ_METRICS_ADDR={} is not a loopback address: /metrics, /healthz and /readyz are reachable "
                    "from the network, without authentication",
                    options_.metrics_address);
            }
        } catch (const Error& e) {
            // Two workers on one host with the default address: the second
            // still works, without its own endpoint. A chosen address must work.
            if (options_.metrics_address != WorkerOptions::kDefaultMetricsAddress) throw;
            log().warn("{}; running without /metrics (set IDEMQ_METRICS_ADDR)", e.what());
        }
    }
    probe_ = std::make_unique<PeriodicTask>(
        std::chrono::seconds(2),
        [this, connection = std::shared_ptr<pqxx::connection>()](const std::stop_token&) mutable {
            std::string error;
            try {
                if (!connection) connection = open_database(options_.database_url, "idemq readiness probe");
                pqxx::nontransaction tx(*connection);
                tx.exec("SELECT 1");
            } catch (const std::exception& e) {
                connection.reset();
                error = first_line(e.what());
            }
            loop_.post([this, error] {
                database_ok_ = error.empty();
                database_error_ = error;
            });
        });
}

void Health::stop_serving() noexcept { http_.reset(); }

std::string Health::not_ready_reason() const {
    std::string reason = not_ready_();
    if (reason.empty() && !database_ok_) reason = "Postgres unreachable: " + database_error_;
    return reason;
}

HttpResponse Health::serve(const std::string& method, const std::string& path) const {
    if (method != "GET" && method != "HEAD") return {.status = 405, .content_type = "text/plain", .body = "GET only\n"};
    if (path == "/metrics") {
        return {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8", .body = telemetry_.render()};
    }
    if (path == "/healthz") {
        // Answered by the loop thread itself: a reply proves the loop turns.
        return {.status = 200, .content_type = "application/json", .body = R"({"status":"ok"})"};
    }
    if (path == "/readyz") {
        const std::string reason = not_ready_reason();
        if (reason.empty()) return {.status = 200, .content_type = "application/json", .body = R"({"ready":true})"};
        return {.status = 503,
                .content_type = "application/json",
                .body = nlohmann::json{{"ready", false}, {"reason", reason}}.dump()};
    }
    return {.status = 404, .content_type = "text/plain", .body = "not found; try /metrics, /healthz or /readyz\n"};
}

}  // namespace idemq::detail
