// payments-worker: the example worker binary. `payments-worker migrate`
// creates the inbox and the payments tables; `payments-worker run` consumes.
// PAYMENTS_BATCH_SIZE=N (N > 1) books up to N charges per transaction with a
// BatchHandler; PAYMENTS_GROUP_COMMIT=N (N > 1) does the same with the plain
// ChargeHandler, each charge in a savepoint of its own (Route::group_commit). Each
// booked charge stages a "charged" event in the outbox; the second handler,
// payments.notify, consumes those events into payments.notifications: the
// whole effectively-once chain in one binary.
#include <idemq/idemq.hpp>

#include <cstdlib>
#include <utility>

#include "charge_handler.hpp"

int main(int argc, char** argv) {
    return idemq::run_app(
        argc, argv,
        {.name = "payments-worker",
         .description = "Books payment charges from RabbitMQ into Postgres, once per message",
         .register_handlers =
             [](idemq::Worker& worker) {
                 const auto setting = [](const char* name) {
                     const char* value = std::getenv(name);
                     return value != nullptr ? std::strtol(value, nullptr, 10) : 0L;
                 };
                 const long size = setting("PAYMENTS_BATCH_SIZE");
                 const long group = setting("PAYMENTS_GROUP_COMMIT");
                 if (size > 1) {
                     worker.add_batch_handler(payments::charge_route(),
                                              std::make_unique<payments::ChargeBatchHandler>(),
                                              {.max_messages = static_cast<std::size_t>(size)});
                 } else {
                     idemq::Route route = payments::charge_route();
                     if (group > 1) route.group_commit = {.max_messages = static_cast<std::size_t>(group)};
                     worker.add_handler(std::move(route), std::make_unique<payments::ChargeHandler>());
                 }
                 worker.add_handler(payments::notify_route(), std::make_unique<payments::NotifyHandler>());
             },
         .migrations = payments::migrations});
}
