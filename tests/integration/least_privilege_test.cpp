// The least-privilege run: the roles of deploy/postgres/roles.sql and the
// RabbitMQ permissions of deploy/rabbitmq/permissions.sh are all the payments
// worker, its relay and the tools need, and they refuse everything else.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include <cstdlib>
#include <functional>
#include <sstream>

#include "amqp/connection.hpp"
#include "charge_handler.hpp"
#include "running_worker.hpp"
#include "support.hpp"

namespace {

using std::chrono::milliseconds;

constexpr const char* kPassword = "least-privilege-secret";

std::string services() {
    const char* value = std::getenv("IDEMQ_SERVICES");
    REQUIRE_MESSAGE((value != nullptr && *value != '\0'),
                    "IDEMQ_SERVICES is not set: eval \"$(scripts/services env)\"");
    return value;
}

std::string deploy_file(const std::string& path) { return std::string(IDEMQ_SOURCE_DIR) + "/deploy/" + path; }

void run_ok(const std::string& command) {
    const int status = std::system((command + " >/dev/null").c_str());
    REQUIRE_MESSAGE(status == 0, "command failed: " << command);
}

// `url` (scheme://user:password@host...) logging in as `user` instead.
std::string as_user(const std::string& url, const std::string& user) {
    const auto start = url.find("://") + 3;
    return url.substr(0, start) + user + ":" + kPassword + url.substr(url.find('@', start));
}

std::string database_name(const test::Database& db) { return db.url().substr(db.url().rfind('/') + 1); }

// The log-in users of one test, Postgres and RabbitMQ. Postgres roles belong
// to the cluster, not to the test's database, so each test names its own;
// declared before the database, they are dropped after it is gone.
class Logins {
public:
    Logins() : prefix_(test::unique_name("lp")) {}
    ~Logins() {
        for (const auto& role : roles_) {
            (void)std::system(
                fmt::format("{} psql -X -q -c 'DROP ROLE IF EXISTS {}' >/dev/null 2>&1", services(), role).c_str());
        }
        for (const auto& user : broker_users_) {
            (void)std::system(fmt::format("{} ctl delete_user {} >/dev/null 2>&1", services(), user).c_str());
        }
    }
    Logins(const Logins&) = delete;
    Logins& operator=(const Logins&) = delete;

    // A role name of this test's own, dropped at the end.
    [[nodiscard]] std::string role(const std::string& what) {
        roles_.push_back(prefix_ + "_" + what);
        return roles_.back();
    }
    [[nodiscard]] std::string broker_user(const std::string& what) {
        broker_users_.push_back(prefix_ + "_" + what);
        run_ok(fmt::format("{} ctl add_user {} {}", services(), broker_users_.back(), kPassword));
        return broker_users_.back();
    }

private:
    std::string prefix_;
    std::vector<std::string> roles_;
    std::vector<std::string> broker_users_;
};

// True when the statement fails for want of a privilege (SQLSTATE 42501).
bool denied(const std::string& url, const std::string& sql) {
    pqxx::connection connection(url);
    pqxx::nontransaction tx(connection);
    try {
        tx.exec(sql);
    } catch (const pqxx::insufficient_privilege&) {
        return true;
    }
    return false;
}

// True when the broker closes the channel with 403 ACCESS_REFUSED. The reply
// code reaches us only inside BrokerError's text, as "closed the channel: 403".
bool refused(const std::string& url, const std::function<void(idemq::detail::AmqpConnection&)>& attempt) {
    idemq::detail::AmqpConnection connection(
        {.url = url, .connection_name = "idemq least-privilege test", .heartbeat = std::chrono::seconds(0)});
    try {
        attempt(connection);
    } catch (const idemq::BrokerError& e) {
        return std::string(e.what()).find("closed the channel: 403 ACCESS_REFUSED") != std::string::npos;
    }
    return false;
}

int run_tool(const std::string& binary, const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env, std::string* output = nullptr) {
    test::Process tool(test::bin(binary), args, env);
    const int code = tool.wait();
    if (output != nullptr) *output = tool.output();
    return code;
}

std::uint64_t dead_lettered(const idemq::WorkerStats& stats) {
    std::uint64_t total = 0;
    for (const auto& [reason, count] : stats.dead_lettered) total += count;
    return total;
}

}  // namespace

TEST_CASE("the payments worker runs with the shipped roles and permissions, which refuse DDL and other queues") {
    Logins logins;
    test::Database db;
    test::Vhost vhost;
    const std::string migrator = logins.role("migrator");
    const std::string runtime = logins.role("runtime");
    const std::string operator_role = logins.role("operator");
    const std::string roles_sql = fmt::format(
        "{} psql -X -q -v ON_ERROR_STOP=1 -d {} -v schema=idemq -v migrator={} -v runtime={} -v operator={} -f {}",
        services(), database_name(db), migrator, runtime, operator_role, deploy_file("postgres/roles.sql"));
    run_ok(roles_sql);

    // The log-in users, as docs/operations.md has an operator create them.
    const std::string deployer = logins.role("deploy");
    const std::string worker_login = logins.role("worker");
    const std::string ops_login = logins.role("ops");
    run_ok(
        fmt::format("{} psql -X -q -v ON_ERROR_STOP=1 -c \"CREATE ROLE {} LOGIN PASSWORD '{}' IN ROLE {}\" "
                    "-c \"ALTER ROLE {} SET role = '{}'\" -c \"CREATE ROLE {} LOGIN PASSWORD '{}' IN ROLE {}\" "
                    "-c \"CREATE ROLE {} LOGIN PASSWORD '{}' IN ROLE {}\"",
                    services(), deployer, kPassword, migrator, deployer, migrator, worker_login, kPassword, runtime,
                    ops_login, kPassword, operator_role));
    const std::string deploy_db = as_user(db.url(), deployer);
    const std::string worker_db = as_user(db.url(), worker_login);
    const std::string ops_db = as_user(db.url(), ops_login);

    std::string output;
    REQUIRE_MESSAGE(run_tool("payments-worker", {"migrate"}, {{"IDEMQ_DATABASE_URL", deploy_db}}, &output) == 0,
                    output);
    // Once more after the migration: now the exact grants on each table.
    run_ok(roles_sql);
    // The application's tables are the application's to grant (docs/operations.md).
    run_ok(
        fmt::format("{1} psql -X -q -v ON_ERROR_STOP=1 -d {2} -c 'GRANT USAGE ON SCHEMA payments TO {0}' "
                    "-c 'GRANT SELECT, INSERT ON payments.ledger, payments.notifications TO {0}' "
                    "-c 'GRANT SELECT, INSERT, UPDATE ON payments.balances TO {0}' "
                    "-c 'GRANT USAGE ON SEQUENCE payments.ledger_id_seq TO {0}'",
                    runtime, services(), database_name(db)));

    const std::string worker_user = logins.broker_user("worker");
    const std::string ops_user = logins.broker_user("ops");
    const std::string handlers =
        "--queue payments.charge --exchange payments --queue payments.notify --exchange payments.events";
    const std::string permissions =
        fmt::format("RABBITMQCTL='{} ctl' {}", services(), deploy_file("rabbitmq/permissions.sh"));
    run_ok(fmt::format("{} worker {} -p {} {} --publish-to payments.events", permissions, worker_user, vhost.name(),
                       handlers));
    run_ok(fmt::format("{} operator {} -p {} {}", permissions, ops_user, vhost.name(), handlers));
    const std::string worker_amqp = as_user(vhost.url(), worker_user);
    const std::string ops_amqp = as_user(vhost.url(), ops_user);

    // Another worker's queue and exchange in the same vhost.
    test::Broker admin(vhost.url());
    admin.declare_queue("billing.invoice");
    {
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "idemq least-privilege setup"});
        setup.declare_exchange("billing", "topic");
    }

    idemq::Route charges = payments::charge_route();
    // Retries through the broker's delay tiers, soon.
    charges.retry = {.immediate_retries = 0,
                     .delayed_retries = 3,
                     .delayed_base = milliseconds(100),
                     .delayed_cap = milliseconds(200)};
    test::RunningWorker worker({.amqp_url = worker_amqp, .database_url = worker_db}, [&](idemq::Worker& w) {
        w.add_handler(charges, std::make_unique<payments::ChargeHandler>());
        w.add_handler(payments::notify_route(), std::make_unique<payments::NotifyHandler>());
    });
    REQUIRE(test::eventually([&] { return admin.consumed("payments.charge") && admin.consumed("payments.notify"); }));
    admin.publish("payments", "charge",
                  {{.body = test::charge("A1", 100), .message_id = "lp-1"},
                   {.body = test::charge("flaky-1", 200), .message_id = "lp-2"},
                   {.body = "{not json", .message_id = "lp-poison"}});
    // Booked (one after two retries), dead-lettered, and each booking's event
    // published by the relay and consumed by payments.notify.
    REQUIRE_MESSAGE(test::eventually([&] {
                        const auto stats = worker.stats();
                        return stats.processed == 4 && dead_lettered(stats) == 1 &&
                               admin.ready("payments.charge.dlq") == 1;
                    }),
                    "processed " << worker.stats().processed);
    CHECK(worker.stats().delayed_retries == 2);
    CHECK(db.count("SELECT count(*) FROM payments.ledger") == 2);
    CHECK(db.count("SELECT count(*) FROM payments.notifications") == 2);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox_published") == 2);

    // The runtime role: no DDL, no TRUNCATE, not even the inbox pruner's DELETE.
    CHECK(denied(worker_db, "CREATE TABLE idemq.intruder (id int)"));
    CHECK(denied(worker_db, "DROP TABLE idemq.inbox"));
    CHECK(denied(worker_db, "TRUNCATE idemq.inbox"));
    CHECK(denied(worker_db, "DELETE FROM idemq.inbox"));
    CHECK(denied(worker_db, "CREATE SCHEMA intruder"));
    // The runtime broker user: nothing of another worker's.
    CHECK(refused(worker_amqp, [](auto& c) { c.consume("billing.invoice", "intruder"); }));
    CHECK(refused(worker_amqp, [](auto& c) { c.declare_queue("billing.refund"); }));
    CHECK(refused(worker_amqp, [](auto& c) {
        c.publish("billing", "invoice", false, idemq::detail::OwnedProperties(), "intruder");
        c.set_prefetch(1);  // a round trip: the refusal of the publish arrives first
    }));
    CHECK(refused(worker_amqp, [](auto& c) { c.bind_queue("payments.charge", "billing", "#"); }));

    // Passive declares (how idemqctl trace reads a queue's depth, how the
    // relay asks whether an exchange exists) need no permission.
    {
        idemq::detail::AmqpConnection ops(
            {.url = ops_amqp, .connection_name = "idemq least-privilege test", .heartbeat = std::chrono::seconds(0)});
        CHECK(ops.inspect_queue("payments.charge").has_value());
        CHECK(ops.exchange_exists("billing"));
    }

    // The operator: the DLQ tools on the broker, idemqctl on Postgres.
    const std::map<std::string, std::string> ops_broker{{"IDEMQ_AMQP_URL", ops_amqp}};
    REQUIRE_MESSAGE(run_tool("payments-worker", {"dlq", "list", "--handler", "payments.charge", "--json"}, ops_broker,
                             &output) == 0,
                    output);
    std::istringstream lines(output);
    std::uint64_t listed = 0;
    for (std::string line; std::getline(lines, line);) {
        const auto json = nlohmann::json::parse(line);
        if (json.contains("listed")) listed = json["listed"].get<std::uint64_t>();
    }
    CHECK(listed == 1);
    REQUIRE_MESSAGE(run_tool("payments-worker", {"dlq", "replay", "--handler", "payments.charge", "--all"}, ops_broker,
                             &output) == 0,
                    output);
    // Replayed to the payments exchange, the poison message is dead-lettered again.
    CHECK(test::eventually([&] { return dead_lettered(worker.stats()) == 2; }));
    const std::map<std::string, std::string> ops_database{{"IDEMQ_DATABASE_URL", ops_db}};
    CHECK_MESSAGE(run_tool("idemqctl", {"outbox", "list"}, ops_database, &output) == 0, output);
    CHECK_MESSAGE(run_tool("idemqctl", {"outbox", "retry", "--parked"}, ops_database, &output) == 0, output);
    CHECK_MESSAGE(run_tool("idemqctl", {"inbox", "prune", "--older-than", "14d"}, ops_database, &output) == 0, output);
    // The worker's own role cannot prune: that is the operator's.
    CHECK(run_tool("idemqctl", {"inbox", "prune", "--older-than", "14d"}, {{"IDEMQ_DATABASE_URL", worker_db}}) != 0);

    const auto stats = worker.stop();
    CHECK(stats.processed == 4);
}
