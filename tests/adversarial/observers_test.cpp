// Observers that misbehave: idle clients of the metrics endpoint must never
// take the file descriptors the real work needs.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
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
    "a thousand idle metrics clients: at most the cap stay open, idle ones are cut, the worker keeps "
    "consuming and reconnecting to Postgres") {
    test::PaymentsWorker payments({.start = false});
    // The worker starts with the common default soft limit of 1024, as under
    // most supervisors; this test then needs more for its idle clients.
    set_own_descriptor_limit(1024);
    payments.start();
    set_own_descriptor_limit(0);
    payments.wait_consuming();
    const int port = payments.process().metrics_port();
    std::map<std::string, long long> expected;
    const auto messages = test::unique_charges(200, expected);
    {
        IdleClients idle(port, kIdleClients);
        // Everything over the cap is closed at once, long before the idle timeout.
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() >= kIdleClients - kCap; }, std::chrono::seconds(3)),
                      "closed by the server: " << idle.closed());
        // A health check is answered even now: it displaces the oldest idle client.
        CHECK(test::http_get(port, "/healthz").first == 200);
        // While they are held, the worker consumes and reconnects to Postgres.
        payments.publish(std::vector<test::Outgoing>(messages.begin(), messages.begin() + 100));
        REQUIRE_MESSAGE(test::eventually([&] { return payments.ledger_rows() == 100; }), payments.output());
        payments.db().terminate_backends();
        payments.publish(std::vector<test::Outgoing>(messages.begin() + 100, messages.end()));
        REQUIRE_MESSAGE(test::eventually([&] { return payments.ledger_rows() == 200; }), payments.output());
        // The idle rest is cut after the request timeout (5 s).
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() == kIdleClients; }, std::chrono::seconds(15)),
                      "closed by the server: " << idle.closed());
        CHECK(test::http_get(port, "/healthz").first == 200);
    }
    CHECK(test::http_get(port, "/healthz").first == 200);
    payments.stop();
    payments.check_exactly_once(200, expected);
    CHECK(payments.final_metric("idemq_dead_lettered_total") == 0);
}

TEST_CASE(
    "idle, slow and oversized metrics clients cost the worker at most the cap in descriptors and never delay a "
    "scrape") {
    test::PaymentsWorker payments;
    payments.wait_consuming();
    const int port = payments.process().metrics_port();
    const int pid = payments.process().pid();
    const int baseline = open_descriptors(pid);
    {
        constexpr int kIdle = 200;
        IdleClients idle(port, kIdle);
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() >= kIdle - kCap; }, std::chrono::seconds(3)),
                      "closed by the server: " << idle.closed());
        // The cap, and a little for the worker's own connections coming and going.
        CHECK(open_descriptors(pid) <= baseline + kCap + 3);

        const auto asked = std::chrono::steady_clock::now();
        CHECK(test::http_get(port, "/metrics").first == 200);
        CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(1));

        // A request line over the 16 KiB limit is refused, not buffered.
        const int huge = test::connect_loopback(port);
        CHECK(send_all(huge, "GET /" + std::string(17 * 1024, 'a')));
        CHECK(read_to_end(huge).starts_with("HTTP/1.1 400 "));
        ::close(huge);

        // A client that sends a byte now and then is cut when its request
        // is not complete after the timeout: trickling does not extend it.
        const int slow = test::connect_loopback(port);
        const auto connected = std::chrono::steady_clock::now();
        CHECK(send_all(slow, "GET /metrics HTTP/1.1\r\n"));
        while (!closed_by_server(slow) && std::chrono::steady_clock::now() - connected < std::chrono::seconds(10)) {
            if (!send_all(slow, "X")) break;
            std::this_thread::sleep_for(milliseconds(200));
        }
        const auto held = std::chrono::steady_clock::now() - connected;
        ::close(slow);
        CHECK(held >= milliseconds(4'500));
        CHECK(held < milliseconds(7'000));
        CHECK_MESSAGE(test::eventually([&] { return idle.closed() == kIdle; }, std::chrono::seconds(3)),
                      "closed by the server: " << idle.closed());
    }
    CHECK(test::eventually([&] { return open_descriptors(pid) <= baseline + 3; }, std::chrono::seconds(3)));
    CHECK(test::http_get(port, "/healthz").first == 200);
}
