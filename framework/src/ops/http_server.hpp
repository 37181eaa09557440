#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_set>

#include "loop/event_loop.hpp"

namespace idemq::detail {

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

// A small HTTP/1.1 server on the event loop for /metrics and health checks:
// requests parsed by http-parser, one request per connection, answered by
// `handle(path)` on the loop thread. Not for anything else. Observers must
// never starve the real work of file descriptors: at most kMaxClients are
// open at once (a new one over the cap closes the oldest still waiting for
// its request, or itself), and a client that
// has not sent a whole request within kRequestTimeout, or not taken its
// answer within kWriteTimeout, is closed.
class HttpServer final {
public:
    using Handler = std::function<HttpResponse(const std::string& method, const std::string& path)>;

    // Listens on "host:port" (port 0 picks a free one). Throws idemq::Error
    // naming IDEMQ_METRICS_ADDR when the address is wrong or taken.
    HttpServer(EventLoop& loop, const std::string& address, Handler handle);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    [[nodiscard]] int port() const noexcept { return port_; }
    // False when the address is reachable from other hosts (anything outside
    // 127.0.0.0/8, 0.0.0.0 included): the endpoints have no authentication.
    [[nodiscard]] bool loopback_only() const noexcept { return loopback_only_; }

    static constexpr std::size_t kMaxClients = 32;
    static constexpr std::chrono::milliseconds kRequestTimeout{5'000};
    static constexpr std::chrono::milliseconds kWriteTimeout{5'000};

private:
    struct Client;
    void accept() noexcept;
    void close(Client* client) noexcept;
    void close_expired() noexcept;

    EventLoop& loop_;
    Handler handle_;
    UvHandle<uv_tcp_t> listener_;
    // Each client frees itself in its handle's close callback: a write may
    // still complete (cancelled) after close() returns.
    std::unordered_set<Client*> clients_;
    Timer sweep_;
    int port_ = 0;
    bool loopback_only_ = true;
};

}  // namespace idemq::detail
