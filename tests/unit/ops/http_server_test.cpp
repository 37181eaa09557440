#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <string>

#include "loop/event_loop.hpp"
#include "ops/http_server.hpp"

using idemq::detail::EventLoop;
using idemq::detail::HttpResponse;
using idemq::detail::HttpServer;

namespace {

HttpResponse answer(const std::string&, const std::string&) { return {}; }

// The message of the idemq::Error that constructing a server on `address` throws.
std::string refusal(EventLoop& loop, const std::string& address) {
    try {
        HttpServer server(loop, address, answer);
    } catch (const idemq::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("an endpoint bound outside 127.0.0.0/8 is known to be reachable from the network") {
    EventLoop loop;
    {
        const HttpServer local(loop, "127.0.0.1:0", answer);
        CHECK(local.loopback_only());
        CHECK(local.port() > 0);
        const HttpServer everywhere(loop, "0.0.0.0:0", answer);
        CHECK_FALSE(everywhere.loopback_only());
    }
    CHECK(loop.close() == 0);
}

TEST_CASE("a malformed or taken metrics address is refused naming IDEMQ_METRICS_ADDR") {
    EventLoop loop;
    CHECK(refusal(loop, "localhost").find("IDEMQ_METRICS_ADDR") != std::string::npos);
    CHECK(refusal(loop, "example.org:9464").find("IDEMQ_METRICS_ADDR") != std::string::npos);
    {
        const HttpServer taken(loop, "127.0.0.1:0", answer);
        const std::string message = refusal(loop, "127.0.0.1:" + std::to_string(taken.port()));
        CHECK(message.find("IDEMQ_METRICS_ADDR") != std::string::npos);
    }
    CHECK(loop.close() == 0);
}
