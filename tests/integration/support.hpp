#pragma once

// Helpers for tests that run against the real RabbitMQ and PostgreSQL started
// by scripts/services. Each test gets its own vhost and database, so tests may
// run in parallel and the example's fixed names never collide.

#include <doctest/doctest.h>
#include <idemq/message.hpp>

#include <pqxx/connection>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "amqp/connection.hpp"

namespace test {

// The test suite of the tests that exercise a distinct concurrent path (the
// loop thread, the handler pool, group commit, coalesced acks, reconnects, the
// relay's threads, shutdown): the ThreadSanitizer tree runs these alone (see
// docs/decisions.md, "What scripts/test runs where"). Mark a test with
// `TEST_CASE("…" * test::concurrency)`.
inline const doctest::test_suite concurrency("concurrency");

// IDEMQ_AMQP_URL / IDEMQ_DATABASE_URL; the test fails (never skips) when unset.
std::string base_amqp_url();
std::string base_database_url();

// A short random name with a prefix, valid as vhost, database and queue name.
std::string unique_name(const std::string& prefix);

// A RabbitMQ vhost of the test's own, deleted afterwards.
class Vhost {
public:
    Vhost();
    ~Vhost();
    Vhost(const Vhost&) = delete;
    Vhost& operator=(const Vhost&) = delete;
    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    // Closes every client connection to this vhost, as a network blip would.
    void close_connections() const;

private:
    std::string name_;
    std::string url_;
};

// A PostgreSQL database of the test's own, dropped afterwards.
class Database {
public:
    Database();
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    // One value of a one-row query, as text ("" for NULL).
    [[nodiscard]] std::string scalar(const std::string& sql) const;
    [[nodiscard]] long long count(const std::string& sql) const { return std::stoll(scalar(sql)); }
    // Like count(), but -1 while the database cannot be reached.
    [[nodiscard]] long long try_count(const std::string& sql) const;
    // Ends every other session connected to this database.
    void terminate_backends() const;

private:
    std::string name_;
    std::string url_;
};

// A message to publish.
struct Outgoing {
    std::string body{};
    std::string message_id{};  // empty: no message-id property
    std::string correlation_id{};
    std::map<std::string, std::string> headers{};
};

// A broker client for tests: publishes with confirms, inspects queues.
class Broker {
public:
    explicit Broker(const std::string& url);
    void publish(const std::string& exchange, const std::string& routing_key, const std::vector<Outgoing>& messages);
    void publish_one(const std::string& exchange, const std::string& routing_key, const Outgoing& message) {
        publish(exchange, routing_key, std::vector<Outgoing>{message});
    }
    // Ready messages in `queue` (0 when it does not exist).
    [[nodiscard]] std::uint32_t ready(const std::string& queue);
    // True once `queue` exists and has a consumer: a worker consumes only
    // after declaring all of its topology, so publishing is safe from then on.
    [[nodiscard]] bool consumed(const std::string& queue) {
        const auto counts = connection_->inspect_queue(queue);
        return counts && counts->consumers > 0;
    }
    // Every message now in `queue`, left in it.
    [[nodiscard]] std::vector<idemq::detail::Delivery> peek_all(const std::string& queue);
    void declare_queue(const std::string& queue) { connection_->declare_queue(queue); }
    // Publishes exactly these properties (any header table, nothing added)
    // and waits for the broker's confirm; fails the test when it is refused.
    void publish_raw(const std::string& exchange, const std::string& routing_key,
                     const idemq::detail::OwnedProperties& properties, const std::string& body);

private:
    std::string url_;
    std::unique_ptr<idemq::detail::AmqpConnection> connection_;
};

// A header of a delivery as text, or "" when absent.
std::string header(const idemq::detail::Delivery& delivery, const std::string& name);

// How often `needle` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& needle);

// Polls `condition` every 50 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A worker binary run as a child process, its output in a file.
class Process {
public:
    Process(const std::string& binary, const std::vector<std::string>& args,
            const std::map<std::string, std::string>& env);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    void signal(int signum);
    // Waits for exit; returns the exit code, or 128 + signal when killed.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    [[nodiscard]] bool running();
    [[nodiscard]] std::string output() const;
    [[nodiscard]] int pid() const { return pid_; }

private:
    int pid_ = -1;
    std::optional<int> status_;
    std::string log_path_;
};

// SIGTERM, then requires a clean exit (0); shows the output otherwise.
void stop_gracefully(Process& process);

// A TCP connection to 127.0.0.1:<port> (the caller closes it); fails the test when refused.
int connect_loopback(int port);

// GET http://127.0.0.1:<port><path>: status code and body.
std::pair<int, std::string> http_get(int port, const std::string& path);
// The same, or nullopt while nothing listens on the port.
std::optional<std::pair<int, std::string>> try_http_get(int port, const std::string& path);

// A TCP socket bound to 127.0.0.1 on a port the kernel picked, listening
// when asked (it never accepts: a peer connects and waits); closed at the end.
class LoopbackSocket {
public:
    explicit LoopbackSocket(bool listening);
    ~LoopbackSocket();
    LoopbackSocket(const LoopbackSocket&) = delete;
    LoopbackSocket& operator=(const LoopbackSocket&) = delete;
    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] int port() const { return port_; }

private:
    int fd_ = -1;
    int port_ = 0;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
int free_loopback_port();

// Path of a binary in build/bin.
std::string bin(const std::string& name);

// Environment for a payments-worker on these services.
std::map<std::string, std::string> worker_env(const Vhost& vhost, const Database& database);

// A payments charge body: {"account": "A1", "amount_cents": 1250}.
std::string charge(const std::string& account, long long cents);

// `count` unique charges (ids m-0, m-1, ...) over 20 accounts; `expected`
// gets what each account's balance must end at.
std::vector<Outgoing> unique_charges(int count, std::map<std::string, long long>& expected);

// Every charge was booked exactly once, nothing dead-lettered or left in the queue.
void check_exactly_once(const Database& db, Broker& broker, int count,
                        const std::map<std::string, long long>& expected);

// "key=value" out of the summary line a worker prints when it stops.
long long summary_value(const std::string& output, const std::string& key);

// Runs `payments-worker migrate` and checks it succeeded.
void migrate_payments(const Database& database);

}  // namespace test
