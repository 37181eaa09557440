// The metrics endpoint as cpp-httplib 0.11 would serve it, for the comparison
// in docs/benchmarks.md ("The metrics endpoint"). Not built by CMake:
//   g++ -std=c++20 -O2 cpp_httplib_server.cpp -o cpp_httplib_server -lcpp-httplib -lpthread
//   ./cpp_httplib_server metrics.txt 19466
#include <httplib.h>

#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    std::ifstream in(argv[1]);
    std::stringstream text;
    text << in.rdbuf();
    const std::string metrics = text.str();
    httplib::Server server;
    server.Get("/metrics", [&](const httplib::Request&, httplib::Response& response) {
        response.set_content(metrics, "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
        response.set_content(R"({"status":"ok"})", "application/json");
    });
    return server.listen("127.0.0.1", std::stoi(argv[2])) ? 0 : 1;
}
