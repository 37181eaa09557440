#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace idemq {

/// TLS to the broker, for amqps:// URLs (docs/security.md). Peer and host name
/// verification are on unless turned off explicitly.
struct AmqpTls {
    std::string ca_file{};    ///< IDEMQ_AMQP_CACERT: PEM file of the CAs to trust; empty: the system trust store
    std::string cert_file{};  ///< IDEMQ_AMQP_CERT: client certificate (PEM, with its chain) for mutual TLS
    std::string key_file{};   ///< IDEMQ_AMQP_KEY: the client certificate's private key (PEM, not encrypted)
    /// IDEMQ_AMQP_TLS_VERIFY (on|off): off accepts any certificate for any host, so anyone on the path can
    /// read and change the traffic; a warning says so at every connection.
    bool verify = true;
};

/// How the worker logs in to the broker.
enum class AmqpAuth {
    plain,     ///< user and password from the URL
    external,  ///< the client certificate alone (SASL EXTERNAL, mutual TLS): no password anywhere
};

/// Worker settings. Build with designated initializers or from the
/// environment; `validate()` runs once at start and throws `ConfigError`
/// naming the setting. See docs/configuration.md.
struct WorkerOptions {
    std::string amqp_url{};      ///< IDEMQ_AMQP_URL, e.g. amqp://user:pass@host:5672/vhost
    std::string database_url{};  ///< IDEMQ_DATABASE_URL, a libpq URL or key=value string (sslmode etc. pass through)
    AmqpTls amqp_tls{};          ///< IDEMQ_AMQP_CACERT, IDEMQ_AMQP_CERT, IDEMQ_AMQP_KEY, IDEMQ_AMQP_TLS_VERIFY
    AmqpAuth amqp_auth = AmqpAuth::plain;  ///< IDEMQ_AMQP_AUTH (plain|external)
    /// IDEMQ_REQUIRE_TLS (0|1): refuse a broker connection that is not amqps:// with verification, and a
    /// database connection whose sslmode is not verify-full.
    bool require_tls = false;
    int concurrency = 4;           ///< IDEMQ_CONCURRENCY: handler threads, one Postgres connection each
    int prefetch = 32;             ///< IDEMQ_PREFETCH: unacked deliveries the broker may hand us
    std::string schema = "idemq";  ///< IDEMQ_SCHEMA: where the inbox lives
    std::size_t max_body_bytes = 16 * 1024 * 1024;     ///< IDEMQ_MAX_BODY_BYTES: larger bodies are dead-lettered
    std::chrono::milliseconds shutdown_grace{30'000};  ///< IDEMQ_SHUTDOWN_GRACE_MS
    std::chrono::seconds heartbeat{30};                ///< IDEMQ_HEARTBEAT_S: AMQP heartbeat interval
    int crash_loop_limit = 5;  ///< IDEMQ_CRASH_LOOP_LIMIT: deliveries that died mid-handling before the DLQ
    std::chrono::milliseconds handler_warn_after{60'000};  ///< IDEMQ_HANDLER_WARN_MS: log a handler running longer
    /// IDEMQ_IDLE_IN_TRANSACTION_TIMEOUT_MS: Postgres ends a session idle inside a transaction this long
    /// (0: the server's setting), so a frozen worker cannot hold an inbox row lock forever.
    std::chrono::milliseconds idle_in_transaction_timeout{600'000};
    /// IDEMQ_METRICS_ADDR: host:port serving /metrics, /healthz and /readyz; empty turns it off; port 0 picks one.
    std::string metrics_address = std::string(kDefaultMetricsAddress);
    /// IDEMQ_INBOX_RETENTION: inbox rows older than this may be pruned; must outlast every retry schedule.
    std::chrono::seconds inbox_retention{14 * 24 * 3600};
    /// IDEMQ_INBOX_PRUNE_INTERVAL: how often the worker prunes the inbox itself; 0 leaves it to `idemqctl inbox prune`.
    std::chrono::seconds inbox_prune_interval{0};
    /// IDEMQ_OUTBOX_RELAY (on|off): run the outbox relay inside this worker (docs/outbox.md).
    bool outbox_relay = true;
    /// IDEMQ_OUTBOX_MAX_ATTEMPTS: refused publishes of an outbox row before it is parked.
    int outbox_max_attempts = 10;
    /// IDEMQ_OUTBOX_LEASE: how long the relay's lease lasts unrenewed, so how soon another relay takes over
    /// the outbox from one that died (renewed at a third of it).
    std::chrono::seconds outbox_lease{5};
    /// IDEMQ_OUTBOX_NOTIFY (on|off): a handler's transaction that staged rows also NOTIFYs the relays, so the
    /// one holding the lease in another process publishes at once rather than at its next 250 ms poll.
    /// Off by default: Postgres serializes the commits of notifying transactions (docs/outbox.md).
    bool outbox_notify = false;
    /// IDEMQ_OUTBOX_RETENTION: published outbox rows (outbox_published, for trace and audit) older than this are
    /// deleted by the relay that holds the lease.
    std::chrono::seconds outbox_retention{7 * 24 * 3600};
    /// SIGINT/SIGTERM stop the worker gracefully; a second one exits at once. True also means the worker
    /// owns the process: when handlers have not returned 3 s after the shutdown grace (their statements
    /// cancelled), it ends the process with exit code 75. False (embedded): it cancels and waits instead.
    bool handle_signals = true;

    static constexpr std::string_view kDefaultMetricsAddress = "127.0.0.1:9464";

    /// Throws ConfigError naming the first wrong setting.
    void validate() const;

    /// Defaults overridden by the IDEMQ_* environment variables that are set.
    /// Throws ConfigError for a value that does not parse.
    [[nodiscard]] static WorkerOptions from_environment();
};

}  // namespace idemq
