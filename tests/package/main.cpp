#include <idemq/idemq.hpp>

#include <pqxx/transaction_base>

namespace orders {
std::vector<idemq::Migration> migrations();

class ShipHandler final : public idemq::Handler {
public:
    void handle(const idemq::Message& message, pqxx::transaction_base& tx, idemq::Context& ctx) override {
        tx.exec_params("INSERT INTO orders.shipped (order_id) VALUES ($1)", std::string(message.message_id()));
        ctx.log().info("shipped {}", message.message_id());
    }
};
}  // namespace orders

int main(int argc, char** argv) {
    return idemq::run_app(argc, argv,
                          {.name = "orders-worker",
                           .description = "Ships orders",
                           .register_handlers =
                               [](idemq::Worker& worker) {
                                   worker.add_handler({.handler = "orders.ship"},
                                                      std::make_unique<orders::ShipHandler>());
                               },
                           .migrations = orders::migrations});
}
