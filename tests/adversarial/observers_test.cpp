// Observers that misbehave: idle clients of the metrics endpoint must never
// take the file descriptors the real work needs.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "payments_worker.hpp"

namespace {

using std::chrono::milliseconds;

// More than the 1024 descriptors of a default soft limit.
constexpr int kIdleClients = 1100;
constexpr int kCap = 32;  // HttpServer::kMaxClients

// True once the server closed the connection (end of stream or reset).
bool closed_by_server(int fd) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char byte = 0;
    return ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
}

class IdleClients {
public:
    IdleClients(int port, int count) {
        for (int i = 0; i < count; ++i) fds_.push_back(test::connect_loopback(port));  // never sends a byte
    }
    ~IdleClients() {
        for (const int fd : fds_) ::close(fd);
    }
    IdleClients(const IdleClients&) = delete;
    IdleClients& operator=(const IdleClients&) = delete;
    [[nodiscard]] int closed() {
        for (std::size_t i = 0; i < fds_.size(); ++i) {
            if (!seen_closed_[i] && closed_by_server(fds_[i])) seen_closed_[i] = true;
        }
        int count = 0;
        for (const auto& [i, closed] : seen_closed_) count += closed ? 1 : 0;
        return count;
    }

private:
    std::vector<int> fds_;
    std::map<std::size_t, bool> seen_closed_;
};

// How many file descriptors process `pid` has open.
int open_descriptors(int pid) {
    const auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
    return static_cast<int>(
        std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()));
}

// Sends all of `bytes`; false once the peer has closed.
bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

// Everything the peer sends until it closes.
std::string read_to_end(int fd) {
    std::string received;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;)
        received.append(buffer, static_cast<std::size_t>(n));
    return received;
}

// A client that sends its request a byte at a time, every 200 ms, from its
// own thread, until the server closes the connection.
class TricklingClient {
public:
    explicit TricklingClient(int port)
        : fd_(test::connect_loopback(port)),
          connected_(std::chrono::steady_clock::now()),
          thread_([this](const std::stop_token& stop) {
              bool open = send_all(fd_, "GET /metrics HTTP/1.1\r\n");
              while (open && !stop.stop_requested() && !closed_by_server(fd_)) {
                  open = send_all(fd_, "X");
                  std::this_thread::sleep_for(milliseconds(200));
              }
              held_ = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - connected_).count();
          }) {}
    ~TricklingClient() {
        thread_.request_stop();
        thread_.join();
        ::close(fd_);
    }
    TricklingClient(const TricklingClient&) = delete;
    TricklingClient& operator=(const TricklingClient&) = delete;
    // How long the server kept the connection, once it closed it (or gave up).
    [[nodiscard]] std::optional<milliseconds> held() const {
        const long long held = held_.load();
        if (held < 0) return std::nullopt;
        return milliseconds(held);
    }

private:
    int fd_;
    std::chrono::steady_clock::time_point connected_;
    std::atomic<long long> held_{-1};
    std::jthread thread_;
};

// Sets this process's soft open file limit; 0: up to the hard limit.
void set_own_descriptor_limit(rlim_t soft) {
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    REQUIRE_MESSAGE(limit.rlim_max >= static_cast<rlim_t>(kIdleClients + 100), "hard open file limit too low");
    limit.rlim_cur = soft == 0 ? limit.rlim_max : soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
}

}  // namespace

TEST_CASE(
    "a thousand idle, slow or oversized metrics clients: at most the cap stay open, none delays a scrape, the "
    "worker keeps consuming and reconnecting to Postgres") {
    test::PaymentsWorker payments({.start = false});
    // The worker starts with the common default soft limit of 1024, as under
    // most supervisors; this test then needs more for its idle clients.
    set_own_descriptor_limit(1024);
    payments.start();
    set_own_descriptor_limit(0);
    payments.wait_consuming();
    const int port = payments.process().metrics_port();
    const int pid = payments.process().pid();
    const int baseline = open_descriptors(pid);
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(200, expected);
    {
        IdleClients idle(port, kIdleClients);
        // The newest client, so the displacements below take idle ones first.
        const TricklingClient trickling(port);
        // Everything over the cap is closed at once, long before the idle timeout.
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() >= kIdleClients - kCap; }, std::chrono::seconds(3)),
                      "closed by the server: " << idle.closed());
        // The cap, and a little for the worker's own connections coming and going.
        CHECK(open_descriptors(pid) <= baseline + kCap + 3);
        // A scrape is answered at once even now: it displaces the oldest idle client.
        const auto asked = std::chrono::steady_clock::now();
        CHECK(test::http_get(port, "/metrics").first == 200);
        CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(1));
        // A request line over the 16 KiB limit is refused, not buffered.
        const int huge = test::connect_loopback(port);
        CHECK(send_all(huge, "GET /" + std::string(17 * 1024, 'a')));
        CHECK(read_to_end(huge).starts_with("HTTP/1.1 400 "));
        ::close(huge);
        // While they are held, the worker consumes and reconnects to Postgres.
        payments.publish(std::vector<test::Outgoing>(messages.begin(), messages.begin() + 100));
        REQUIRE_MESSAGE(test::eventually([&] { return payments.ledger_rows() == 100; }), payments.output());
        payments.db().terminate_backends();
        payments.publish(std::vector<test::Outgoing>(messages.begin() + 100, messages.end()));
        REQUIRE_MESSAGE(test::eventually([&] { return payments.ledger_rows() == 200; }), payments.output());
        // The idle rest is cut after the request timeout (5 s).
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() == kIdleClients; }, std::chrono::seconds(15)),
                      "closed by the server: " << idle.closed());
        // And so is the trickling client: its bytes do not extend the deadline.
        REQUIRE(test::eventually([&] { return trickling.held().has_value(); }, std::chrono::seconds(10)));
        CHECK(*trickling.held() >= milliseconds(4'500));
        CHECK(*trickling.held() < milliseconds(7'000));
        CHECK(test::http_get(port, "/healthz").first == 200);
    }
    CHECK(test::http_get(port, "/healthz").first == 200);
    payments.stop();
    payments.check_exactly_once(200, expected);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
}
