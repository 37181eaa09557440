#include "ops/http_server.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <http_parser.h>

#include <algorithm>
#include <array>
#include <vector>

namespace idemq::detail {
namespace {

constexpr std::size_t kMaxRequestBytes = 16 * 1024;
constexpr std::chrono::milliseconds kSweepInterval{500};

std::string_view reason_phrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

}  // namespace

struct HttpServer::Client {
    HttpServer* server = nullptr;
    uv_tcp_t tcp{};
    bool closing = false;
    // Closed by the sweep once passed: first for the request, then the write.
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point accepted_at;
    http_parser parser{};
    std::string url;
    std::size_t received = 0;
    bool answered = false;
    std::string response;
    uv_write_t write{};
    std::array<char, 4096> buffer{};
};

HttpServer::HttpServer(EventLoop& loop, const std::string& address, Handler handle)
    : loop_(loop), handle_(std::move(handle)), sweep_(loop) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        throw ConfigError(fmt::format("IDEMQ_METRICS_ADDR must be host:port, got '{}'", address));
    }
    const std::string host = address.substr(0, colon);
    int port = 0;
    try {
        port = std::stoi(address.substr(colon + 1));
    } catch (const std::exception&) {
        throw ConfigError(fmt::format("IDEMQ_METRICS_ADDR must be host:port, got '{}'", address));
    }
    sockaddr_in addr{};
    if (uv_ip4_addr(host.c_str(), port, &addr) != 0) {
        throw ConfigError(fmt::format("IDEMQ_METRICS_ADDR: '{}' is not an IPv4 address", host));
    }
    loopback_only_ = (ntohl(addr.sin_addr.s_addr) >> 24) == 127;
    if (uv_tcp_init(loop_.raw(), listener_.get()) != 0) throw Error("uv_tcp_init failed");
    listener_.mark_initialized();
    listener_.get()->data = this;
    int status = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
    if (status == 0) {
        status = uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), 64, [](uv_stream_t* server, int result) {
            if (result == 0) static_cast<HttpServer*>(server->data)->accept();
        });
    }
    if (status != 0) {
        throw Error(fmt::format("IDEMQ_METRICS_ADDR: cannot listen on {}: {}", address, uv_strerror(status)));
    }
    sockaddr_storage bound{};
    int length = sizeof(bound);
    uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    sweep_.start(kSweepInterval, kSweepInterval, [this] { close_expired(); });
}

void HttpServer::close_expired() noexcept {
    const auto now = std::chrono::steady_clock::now();
    std::vector<Client*> expired;
    for (Client* client : clients_) {
        if (client->deadline <= now) expired.push_back(client);
    }
    for (Client* client : expired) close(client);
}

HttpServer::~HttpServer() {
    while (!clients_.empty()) close(*clients_.begin());
}

void HttpServer::accept() noexcept {
    auto* client = new Client();
    client->server = this;
    if (uv_tcp_init(loop_.raw(), &client->tcp) != 0) {
        delete client;
        return;
    }
    auto* stream = reinterpret_cast<uv_stream_t*>(&client->tcp);
    stream->data = client;
    clients_.insert(client);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_.get()), stream) != 0) {
        close(client);
        return;
    }
    client->accepted_at = std::chrono::steady_clock::now();
    client->deadline = client->accepted_at + kRequestTimeout;
    if (clients_.size() > kMaxClients) {
        // Over the cap the oldest client still without a request goes: idle
        // connections cannot lock a health check out, they only race it. (A
        // connection left unaccepted instead would stall the listener.)
        Client* oldest = client;
        for (Client* other : clients_) {
            if (!other->answered && other->accepted_at < oldest->accepted_at) oldest = other;
        }
        close(oldest);
        if (oldest == client) return;
    }
    http_parser_init(&client->parser, HTTP_REQUEST);
    client->parser.data = client;
    uv_read_start(
        stream,
        [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
            auto* self = static_cast<Client*>(handle->data);
            *buf = uv_buf_init(self->buffer.data(), static_cast<unsigned int>(self->buffer.size()));
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
            auto* self = static_cast<Client*>(stream->data);
            HttpServer* server = self->server;
            if (nread < 0) {
                server->close(self);
                return;
            }
            if (nread == 0) return;  // EAGAIN: libuv's "nothing this time", not end of stream
            self->received += static_cast<std::size_t>(nread);
            static const http_parser_settings settings = [] {
                http_parser_settings s{};
                http_parser_settings_init(&s);
                s.on_url = [](http_parser* parser, const char* at, std::size_t length) {
                    static_cast<Client*>(parser->data)->url.append(at, length);
                    return 0;
                };
                s.on_message_complete = [](http_parser* parser) {
                    auto* client = static_cast<Client*>(parser->data);
                    HttpResponse response;
                    const std::string method = http_method_str(static_cast<http_method>(parser->method));
                    try {
                        const std::string path = client->url.substr(0, client->url.find('?'));
                        response = client->server->handle_(method, path);
                    } catch (const std::exception& e) {
                        response = {.status = 500, .content_type = "text/plain; charset=utf-8", .body = e.what()};
                    }
                    client->response = fmt::format(
                        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        response.status, reason_phrase(response.status), response.content_type, response.body.size(),
                        method == "HEAD" ? "" : response.body);
                    client->answered = true;
                    return 1;  // pause: one request per connection
                };
                return s;
            }();
            http_parser_execute(&self->parser, &settings, buf->base, static_cast<std::size_t>(nread));
            const bool bad =
                HTTP_PARSER_ERRNO(&self->parser) != HPE_OK && HTTP_PARSER_ERRNO(&self->parser) != HPE_PAUSED;
            if (!self->answered && (bad || self->received > kMaxRequestBytes)) {
                self->response = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                self->answered = true;
            }
            if (!self->answered) return;
            uv_read_stop(stream);
            self->deadline = std::chrono::steady_clock::now() + kWriteTimeout;
            uv_buf_t out = uv_buf_init(self->response.data(), static_cast<unsigned int>(self->response.size()));
            self->write.data = self;
            if (uv_write(&self->write, stream, &out, 1, [](uv_write_t* request, int) {
                    auto* client = static_cast<Client*>(request->data);
                    if (!client->closing) client->server->close(client);
                }) != 0) {
                server->close(self);
            }
        });
}

void HttpServer::close(Client* client) noexcept {
    if (client->closing) return;
    client->closing = true;
    clients_.erase(client);
    uv_close(reinterpret_cast<uv_handle_t*>(&client->tcp),
             [](uv_handle_t* handle) { delete static_cast<Client*>(handle->data); });
}

}  // namespace idemq::detail
