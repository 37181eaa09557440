// payments-worker: the example worker binary. `payments-worker migrate`
// creates the inbox and the payments tables; `payments-worker run` consumes.
#include <idemq/idemq.hpp>

#include "charge_handler.hpp"

int main(int argc, char** argv) {
    return idemq::run_app(argc, argv,
                          {.name = "payments-worker",
                           .description = "Books payment charges from RabbitMQ into Postgres, once per message",
                           .register_handlers =
                               [](idemq::Worker& worker) {
                                   worker.add_handler(payments::charge_route(),
                                                      std::make_unique<payments::ChargeHandler>());
                               },
                           .migrations = payments::migrations});
}
