// payments-worker: the example worker binary. `payments-worker migrate`
// creates the inbox and the payments tables; `payments-worker run` consumes.
// PAYMENTS_BATCH_SIZE=N (N > 1) books up to N charges per transaction. Each
// booked charge stages a "charged" event in the outbox; the second handler,
// payments.notify, consumes those events into payments.notifications: the
// whole effectively-once chain in one binary.
#include <idemq/idemq.hpp>

#include <cstdlib>

#include "charge_handler.hpp"

int main(int argc, char** argv) {
    return idemq::run_app(
        argc, argv,
        {.name = "payments-worker",
         .description = "Books payment charges from RabbitMQ into Postgres, once per message",
         .register_handlers =
             [](idemq::Worker& worker) {
                 const char* batch = std::getenv("PAYMENTS_BATCH_SIZE");
                 const long size = batch != nullptr ? std::strtol(batch, nullptr, 10) : 0;
                 if (size > 1) {
                     worker.add_batch_handler(payments::charge_route(),
                                              std::make_unique<payments::ChargeBatchHandler>(),
                                              {.max_messages = static_cast<std::size_t>(size)});
                 } else {
                     worker.add_handler(payments::charge_route(), std::make_unique<payments::ChargeHandler>());
                 }
                 worker.add_handler(payments::notify_route(), std::make_unique<payments::NotifyHandler>());
             },
         .migrations = payments::migrations});
}
