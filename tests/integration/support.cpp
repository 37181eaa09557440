#include "support.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pqxx/nontransaction>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "amqp/confirmed_publisher.hpp"
#include "testing/raw_publisher.hpp"

extern char** environ;

namespace test {
namespace {

std::string required_env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        FAIL(std::string(name)
             << " is not set: start the services with scripts/services start and eval \"$(scripts/services env)\""
                " (./scripts/test does both)");
    }
    return value;
}

std::string services_script() {
    const char* value = std::getenv("IDEMQ_SERVICES");
    return value != nullptr && *value != '\0' ? value : std::string(IDEMQ_SOURCE_DIR) + "/scripts/services";
}

void run_or_fail(const std::string& command) {
    const int status = std::system((command + " >/dev/null").c_str());
    REQUIRE_MESSAGE(status == 0, "command failed: " << command);
}

std::string with_path(const std::string& url, const std::string& path) {
    const auto scheme_end = url.find("://");
    const auto slash = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    return (slash == std::string::npos ? url : url.substr(0, slash)) + "/" + path;
}

}  // namespace

std::string base_amqp_url() { return required_env("IDEMQ_AMQP_URL"); }
std::string base_database_url() { return required_env("IDEMQ_DATABASE_URL"); }

std::string unique_name(const std::string& prefix) {
    static std::mt19937_64 random{std::random_device{}()};
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    return fmt::format("{}_{:010x}", prefix, random() & 0xFFFFFFFFFFULL);
}

Vhost::Vhost() : name_(unique_name("t")) {
    (void)base_amqp_url();
    const std::string ctl = services_script() + " ctl";
    run_or_fail(fmt::format("{} add_vhost {}", ctl, name_));
    run_or_fail(fmt::format("{} set_permissions -p {} idemq '.*' '.*' '.*'", ctl, name_));
    url_ = with_path(base_amqp_url(), name_);
}

void Vhost::close_connections() const {
    run_or_fail(fmt::format("{} ctl close_all_connections --vhost {} 'test: simulated network failure'",
                            services_script(), name_));
}

Vhost::~Vhost() {
    (void)std::system(fmt::format("{} ctl delete_vhost {} >/dev/null 2>&1", services_script(), name_).c_str());
}

Database::Database() : name_(unique_name("t")) {
    pqxx::connection admin(base_database_url());
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + name_);
    url_ = with_path(base_database_url(), name_);
}

Database::~Database() {
    try {
        pqxx::connection admin(base_database_url());
        pqxx::nontransaction tx(admin);
        tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
        // A leftover test database is harmless; the services are throwaway.
    }
}

long long Database::try_count(const std::string& sql) const {
    try {
        return count(sql);
    } catch (const std::exception&) {
        return -1;
    }
}

void Database::terminate_backends() const {
    pqxx::connection admin(base_database_url());
    pqxx::nontransaction tx(admin);
    tx.exec_params(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name_);
}

std::string Database::scalar(const std::string& sql) const {
    pqxx::connection connection(url_);
    pqxx::nontransaction tx(connection);
    const pqxx::result result = tx.exec(sql);
    if (result.empty() || result[0][0].is_null()) return {};
    return result[0][0].as<std::string>();
}

Broker::Broker(const std::string& url)
    : url_(url),
      connection_(std::make_unique<idemq::detail::AmqpConnection>(idemq::detail::AmqpConnection::Settings{
          .url = url, .connection_name = "idemq test", .heartbeat = std::chrono::seconds(0)})) {}

void Broker::publish(const std::string& exchange, const std::string& routing_key,
                     const std::vector<Outgoing>& messages) {
    idemq::detail::BlockingPublisher publisher({.url = url_, .connection_name = "idemq test publisher"});
    std::vector<std::string> failures;
    for (const auto& message : messages) {
        idemq::detail::HeaderList headers;
        for (const auto& [key, value] : message.headers) headers.emplace_back(key, value);
        publisher.publish(exchange, routing_key,
                          idemq::detail::OwnedProperties::make(message.message_id, message.correlation_id,
                                                               "application/json", headers),
                          message.body, [&](std::optional<std::string> error) {
                              if (error) failures.push_back(*error);
                          });
    }
    publisher.wait_all();
    REQUIRE_MESSAGE(failures.empty(), "publish failed: " << (failures.empty() ? "" : failures.front()));
}

void Broker::publish_raw(const std::string& exchange, const std::string& routing_key,
                         const idemq::detail::OwnedProperties& properties, const std::string& body) {
    const auto refused = idemq::detail::RawPublisher(url_).publish(exchange, routing_key, properties, body);
    REQUIRE_MESSAGE(!refused, "the broker refused the raw publish: " << refused.value_or(""));
}

std::uint32_t Broker::ready(const std::string& queue) {
    const auto counts = connection_->inspect_queue(queue);
    return counts ? counts->messages : 0;
}

std::vector<idemq::detail::Delivery> Broker::peek_all(const std::string& queue) {
    // Messages got without ack return to the queue when this connection closes.
    idemq::detail::AmqpConnection connection({.url = url_, .connection_name = "idemq test peek"});
    std::vector<idemq::detail::Delivery> all;
    while (auto delivery = connection.get(queue)) all.push_back(std::move(*delivery));
    return all;
}

std::string header(const idemq::detail::Delivery& delivery, const std::string& name) {
    const auto headers = delivery.properties.headers_as_text();
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
    return count;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return condition();
}

Process::Process(const std::string& binary, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env)
    : log_path_(fmt::format("/tmp/{}.log", unique_name("idemq_test_process"))) {
    std::map<std::string, std::string> merged;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string text = *entry;
        const auto equals = text.find('=');
        if (equals != std::string::npos) merged[text.substr(0, equals)] = text.substr(equals + 1);
    }
    for (const auto& [key, value] : env) merged[key] = value;
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : merged) env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings{binary};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const int error = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(error == 0, "cannot start " << binary << ": " << std::strerror(error));
}

Process::~Process() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    std::remove(log_path_.c_str());
}

void Process::signal(int signum) {
    if (!status_) ::kill(pid_, signum);
}

bool Process::running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return true;
}

int Process::wait(std::chrono::milliseconds timeout) {
    REQUIRE_MESSAGE(eventually([&] { return !running(); }, timeout), "process did not exit within " << timeout.count()
                                                                                                    << " ms; output:\n"
                                                                                                    << output());
    return *status_;
}

std::string Process::output() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void stop_gracefully(Process& process) {
    process.signal(SIGTERM);
    const int code = process.wait();
    REQUIRE_MESSAGE(code == 0, "exit code " << code << "; output:\n" << process.output());
}

namespace {

// A TCP connection to 127.0.0.1:<port>, or -1 when refused.
int try_connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

int connect_loopback(int port) {
    const int fd = try_connect_loopback(port);
    if (fd < 0) FAIL("cannot connect to 127.0.0.1:" << port);
    return fd;
}

std::optional<std::pair<int, std::string>> try_http_get(int port, const std::string& path) {
    const int fd = try_connect_loopback(port);
    if (fd < 0) return std::nullopt;
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    std::string response;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;)
        response.append(buffer, static_cast<std::size_t>(n));
    ::close(fd);
    REQUIRE_MESSAGE(response.starts_with("HTTP/1.1 "), response);
    const int status = std::stoi(response.substr(9, 3));
    const auto body = response.find("\r\n\r\n");
    return std::pair{status, body == std::string::npos ? std::string() : response.substr(body + 4)};
}

std::pair<int, std::string> http_get(int port, const std::string& path) {
    auto response = try_http_get(port, path);
    if (!response) FAIL("cannot connect to 127.0.0.1:" << port);
    return std::move(*response);
}

LoopbackSocket::LoopbackSocket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE_MESSAGE(fd_ >= 0, "socket: " << std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    const bool ready = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                       (!listening || ::listen(fd_, 8) == 0) &&
                       ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length) == 0;
    if (!ready) {
        const int error = errno;
        ::close(fd_);
        FAIL("cannot bind 127.0.0.1:0: " << std::strerror(error));
    }
    port_ = ntohs(addr.sin_port);
}

LoopbackSocket::~LoopbackSocket() { ::close(fd_); }

int free_loopback_port() { return LoopbackSocket(false).port(); }

std::string bin(const std::string& name) { return std::string(IDEMQ_BIN_DIR) + "/" + name; }

std::map<std::string, std::string> worker_env(const Vhost& vhost, const Database& database) {
    return {{"IDEMQ_AMQP_URL", vhost.url()},      {"IDEMQ_DATABASE_URL", database.url()},
            {"IDEMQ_CONCURRENCY", "4"},           {"IDEMQ_PREFETCH", "32"},
            {"IDEMQ_SHUTDOWN_GRACE_MS", "10000"}, {"IDEMQ_METRICS_ADDR", "127.0.0.1:0"}};
}

std::string charge(const std::string& account, long long cents) {
    return R"({"account": ")" + account + R"(", "amount_cents": )" + std::to_string(cents) + "}";
}

std::vector<Outgoing> unique_charges(int count, std::map<std::string, long long>& expected) {
    std::vector<Outgoing> messages;
    for (int i = 0; i < count; ++i) {
        const std::string account = "A" + std::to_string(i % 20);
        const long long cents = 1 + (i % 89);
        expected[account] += cents;
        messages.push_back({.body = charge(account, cents), .message_id = "m-" + std::to_string(i)});
    }
    return messages;
}

void check_exactly_once(const Database& db, Broker& broker, int count,
                        const std::map<std::string, long long>& expected) {
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == count);
    CHECK(db.count("SELECT count(DISTINCT message_id) FROM payments.ledger") == count);
    for (const auto& [account, cents] : expected) {
        CHECK_MESSAGE(
            db.count("SELECT balance_cents FROM payments.balances WHERE account = '" + account + "'") == cents,
            account);
    }
    CHECK(broker.ready("payments.charge") == 0);
    CHECK(broker.ready("payments.charge.dlq") == 0);
}

long long summary_value(const std::string& output, const std::string& key) {
    const auto line = output.rfind("summary: ");
    REQUIRE_MESSAGE(line != std::string::npos, "no summary line in:\n" << output);
    const auto at = output.find(" " + key + "=", line);
    REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in the summary:\n" << output);
    return std::stoll(output.substr(at + key.size() + 2));
}

void migrate_payments(const Database& database) {
    Process migrate(bin("payments-worker"), {"migrate"}, {{"IDEMQ_DATABASE_URL", database.url()}});
    const int code = migrate.wait();
    REQUIRE_MESSAGE(code == 0, "payments-worker migrate failed:\n" << migrate.output());
}

}  // namespace test
