// The metrics endpoint as civetweb would serve it, for the comparison in
// docs/benchmarks.md ("The metrics endpoint"). Not built by CMake:
//   g++ -std=c++20 -O2 civetweb_server.cpp -o civetweb_server -lcivetweb
//   ./civetweb_server metrics.txt 127.0.0.1:19465 8
// serves the bytes of metrics.txt on /metrics and {"status":"ok"} on /healthz
// until SIGTERM, with the settings a worker would use.
#include <civetweb.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>

namespace {

int serve(mg_connection* connection, void* data) {
    const auto* body = static_cast<const std::string*>(data);
    mg_send_http_ok(connection, "text/plain; version=0.0.4; charset=utf-8", static_cast<long long>(body->size()));
    mg_write(connection, body->data(), body->size());
    return 200;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) return 2;
    std::ifstream in(argv[1]);
    std::stringstream text;
    text << in.rdbuf();
    std::string metrics = text.str();
    std::string health = R"({"status":"ok"})";
    mg_init_library(0);
    const char* options[] = {"listening_ports",
                             argv[2],
                             "num_threads",
                             argv[3],
                             "request_timeout_ms",
                             "5000",
                             "connection_queue",
                             "8",
                             "listen_backlog",
                             "64",
                             "enable_keep_alive",
                             "no",
                             nullptr};
    mg_callbacks callbacks{};
    mg_context* context = mg_start(&callbacks, nullptr, options);
    if (context == nullptr) return 1;
    mg_set_request_handler(context, "/metrics", serve, &metrics);
    mg_set_request_handler(context, "/healthz", serve, &health);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, nullptr);
    int signal = 0;
    sigwait(&stop, &signal);
    mg_stop(context);
}
