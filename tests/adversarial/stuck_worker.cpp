// stuck-worker: a worker binary whose handler never returns, for the
// misbehaving-handler tests. It consumes queue "stuck" (bound to nothing:
// publish to the default exchange), and its handler ignores everything,
// cancellation included, so only the shutdown's exit bound can end it.
#include <idemq/idemq.hpp>

#include <chrono>
#include <thread>

namespace {

class NeverReturns final : public idemq::Handler {
public:
    void handle(const idemq::Message&, pqxx::transaction_base&, idemq::Context&) override {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
};

}  // namespace

int main(int argc, char** argv) {
    return idemq::run_app(argc, argv,
                          {.name = "stuck-worker",
                           .description = "A worker whose handler never returns (tests only)",
                           .register_handlers =
                               [](idemq::Worker& worker) {
                                   worker.add_handler({.handler = "stuck", .queue = "stuck"},
                                                      std::make_unique<NeverReturns>());
                               },
                           .migrations = {}});
}
