// The outbox relay against the real services: committed rows reach the
// broker once each, late commits are not skipped, refused publishes are
// retried and parked, a dead relay's lease is taken over, an outage waited
// out, and per-key order kept.
#include <doctest/doctest.h>

#include <idemq/idemq.hpp>

#include <pqxx/transaction>

#include <csignal>
#include <cstdlib>
#include <map>
#include <thread>

#include "amqp/connection.hpp"
#include "outbox/relay.hpp"
#include "support.hpp"

using idemq::detail::OutboxRelay;
using idemq::detail::RelaySettings;

namespace {

struct RelayFixture {
    test::Database db;
    test::Vhost vhost;
    test::Broker broker{vhost.url()};
    pqxx::connection connection;
    idemq::detail::Telemetry telemetry{{}};

    RelayFixture() : connection(db.url()) {
        idemq::apply_migrations(db.url(), "idemq", idemq::framework_migrations());
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "relay test setup"});
        setup.declare_exchange("events", "topic");
        setup.declare_queue("sink");
        setup.bind_queue("sink", "events", "#.charged");
    }
    [[nodiscard]] RelaySettings settings() const {
        return {.amqp_url = vhost.url(),
                .database_url = db.url(),
                .lease = std::chrono::seconds(2),
                .max_attempts = 3,
                .retry_base = std::chrono::milliseconds(50),
                .retry_cap = std::chrono::milliseconds(200)};
    }
    void stage(const std::string& body, const std::string& routing_key = "a.charged",
               const std::string& ordering_key = "") {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "events",
                                  .routing_key = routing_key,
                                  .body = body,
                                  .message_id = "id-" + body,
                                  .ordering_key = ordering_key});
        tx.commit();
    }
    long long pending() { return db.count("SELECT count(*) FROM idemq.outbox"); }
    long long published() { return db.count("SELECT count(*) FROM idemq.outbox_published"); }
};

// A RabbitMQ user of the test's own that may write to `writable` exchanges
// only (a regex), and configure and read nothing: the relay's least
// privilege, minus an exchange it is not meant to reach. Deleted afterwards.
class RestrictedUser {
public:
    RestrictedUser(const test::Vhost& vhost, const std::string& writable)
        : name_(test::unique_name("relay")), url_(vhost.url()) {
        run(fmt::format("add_user {} {}", name_, kPassword));
        run(fmt::format("set_permissions -p {} {} '^$' '{}' '^$'", vhost.name(), name_, writable));
        const auto user_start = url_.find("://") + 3;
        url_.replace(user_start, url_.find('@') - user_start, fmt::format("{}:{}", name_, kPassword));
    }
    ~RestrictedUser() { (void)std::system(fmt::format("{} delete_user {} >/dev/null 2>&1", ctl(), name_).c_str()); }
    RestrictedUser(const RestrictedUser&) = delete;
    RestrictedUser& operator=(const RestrictedUser&) = delete;
    [[nodiscard]] const std::string& url() const { return url_; }

private:
    static constexpr const char* kPassword = "relay-secret";
    static std::string ctl() {
        const char* services = std::getenv("IDEMQ_SERVICES");
        return fmt::format("{} ctl",
                           services != nullptr && *services != '\0' ? services : IDEMQ_SOURCE_DIR "/scripts/services");
    }
    static void run(const std::string& command) {
        REQUIRE_MESSAGE(std::system(fmt::format("{} {} >/dev/null", ctl(), command).c_str()) == 0, command);
    }
    std::string name_;
    std::string url_;
};

}  // namespace

TEST_CASE_FIXTURE(RelayFixture,
                  "committed rows are published once each, with their ids, and move to published" * test::concurrency) {
    for (int i = 0; i < 50; ++i) stage("m" + std::to_string(i));
    {
        OutboxRelay relay(settings(), &telemetry);
        REQUIRE(test::eventually([&] { return broker.ready("sink") == 50 && pending() == 0; }));
        CHECK(published() == 50);
        CHECK(db.count(fmt::format("SELECT count(DISTINCT relay) FROM idemq.outbox_published WHERE relay = '{}'",
                                   relay.identity())) == 1);
    }
    const auto sunk = broker.peek_all("sink");
    REQUIRE(sunk.size() == 50);
    CHECK(sunk[0].properties.message_id() == "id-m0");
    CHECK(sunk[0].body == "m0");
    CHECK(telemetry.render().find("idemq_outbox_published_total 50") != std::string::npos);
}

TEST_CASE_FIXTURE(RelayFixture, "a row whose transaction commits after later rows were published is still published") {
    OutboxRelay relay(settings(), &telemetry);
    pqxx::connection late_connection(db.url());
    pqxx::work late(late_connection);
    idemq::outbox::stage(late, {.exchange = "events", .routing_key = "a.charged", .body = "A", .message_id = "A"});
    // B..Z take higher ids and commit while A's transaction stays open.
    for (char c = 'B'; c <= 'Z'; ++c) stage(std::string(1, c));
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 25; }));
    CHECK(pending() == 0);  // A is not visible yet
    late.commit();
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 26 && pending() == 0; }));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox_published WHERE message_id = 'A'::bytea") == 1);
}

TEST_CASE_FIXTURE(RelayFixture,
                  "an unroutable row is retried, parked, and published once retried after a binding exists") {
    stage("lost", "b.nowhere");
    stage("fine");
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox WHERE parked_at IS NOT NULL") == 1; }));
    CHECK(db.count("SELECT attempts FROM idemq.outbox WHERE parked_at IS NOT NULL") == 3);
    CHECK(db.scalar("SELECT last_error FROM idemq.outbox WHERE parked_at IS NOT NULL").find("NO_ROUTE") !=
          std::string::npos);
    CHECK(broker.ready("sink") == 1);  // the other row went its way
    REQUIRE(
        test::eventually([&] { return telemetry.render().find("idemq_outbox_parked_rows 1") != std::string::npos; }));
    CHECK(telemetry.render().find("idemq_outbox_parked_total 1") != std::string::npos);

    {
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "relay test setup"});
        setup.declare_queue("elsewhere");
        setup.bind_queue("elsewhere", "events", "b.#");
    }
    const std::map<std::string, std::string> env{{"IDEMQ_DATABASE_URL", db.url()}};
    const auto ctl = [&](const std::vector<std::string>& args) {
        test::Process process(test::bin("idemqctl"), args, env);
        const int code = process.wait();
        return std::pair(code, process.output());
    };
    const auto [listed, list] = ctl({"outbox", "list", "--parked"});
    CHECK(listed == 0);
    CHECK(list.find("parked") != std::string::npos);
    CHECK(list.find("b.nowhere") != std::string::npos);
    CHECK(list.find("1 row(s) parked") != std::string::npos);
    // The DLQ tools' rules: name the rows, and a purge needs --yes.
    CHECK(ctl({"outbox", "retry"}).first == 2);
    CHECK(ctl({"outbox", "purge", "--parked"}).first == 2);
    CHECK(ctl({"outbox", "retry", "--parked", "--dry-run"}).second.find("would retry 1 row(s)") != std::string::npos);
    CHECK(db.count("SELECT count(*) FROM idemq.outbox WHERE parked_at IS NOT NULL") == 1);
    const auto [purged, purge_dry] = ctl({"outbox", "purge", "--parked", "--dry-run"});
    CHECK(purged == 0);
    CHECK(purge_dry.find("would purge 1 row(s)") != std::string::npos);
    CHECK(pending() == 1);
    const auto [retried, retry] = ctl({"outbox", "retry", "--parked"});
    CHECK(retried == 0);
    CHECK(retry.find("retried 1 row(s)") != std::string::npos);
    REQUIRE(test::eventually([&] { return broker.ready("elsewhere") == 1 && pending() == 0; }));
}

TEST_CASE_FIXTURE(RelayFixture,
                  "a publish to an exchange that does not exist is a failure of that row, not an outage") {
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "no-such-exchange", .routing_key = "x", .body = "gone"});
        tx.commit();
    }
    stage("fine");
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox WHERE parked_at IS NOT NULL") == 1; }));
    CHECK(db.scalar("SELECT last_error FROM idemq.outbox WHERE parked_at IS NOT NULL").find("does not exist") !=
          std::string::npos);
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 1; }));
}

TEST_CASE_FIXTURE(RelayFixture, "binary routing keys, ids, headers and bodies reach the broker byte for byte") {
    {
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "relay test setup"});
        setup.declare_exchange("fan", "fanout");
        setup.declare_queue("fansink");
        setup.bind_queue("fansink", "fan", "");
    }
    const std::string routing_key("key\0\xff\x01", 6);
    const std::string body("\0\xfe{\"x\":1}\xc3", 10);
    const std::string message_id("id\0\x80", 4);
    {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "fan",
                                  .routing_key = routing_key,
                                  .body = body,
                                  .message_id = message_id,
                                  .headers = {{"note", std::string("a\0b\xff", 4)}}});
        tx.commit();
    }
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually([&] { return broker.ready("fansink") == 1 && pending() == 0; }));
    const auto sunk = broker.peek_all("fansink");
    REQUIRE(sunk.size() == 1);
    CHECK(sunk[0].routing_key == routing_key);
    CHECK(sunk[0].body == body);
    CHECK(sunk[0].properties.message_id() == message_id);
    CHECK(test::header(sunk[0], "note") == std::string("a\0b\xff", 4));
}

TEST_CASE_FIXTURE(RelayFixture, "a row whose stored properties cannot be read is parked with the reason, alone") {
    (void)db.count(
        "WITH r AS (INSERT INTO idemq.outbox (exchange, routing_key, message_id, properties, body) "
        "VALUES ('events'::bytea, 'a.charged'::bytea, 'broken'::bytea, '{\"headers\": [1', 'x'::bytea) "
        "RETURNING 1) SELECT count(*) FROM r");
    stage("fine");
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox WHERE parked_at IS NOT NULL") == 1; }));
    CHECK(db.scalar("SELECT last_error FROM idemq.outbox WHERE parked_at IS NOT NULL").find("cannot be read") !=
          std::string::npos);
    CHECK(db.count("SELECT attempts FROM idemq.outbox WHERE parked_at IS NOT NULL") == 1);  // no retry can help
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 1; }));
    CHECK(broker.peek_all("sink")[0].body == "fine");
}

TEST_CASE_FIXTURE(RelayFixture, "outbox::wake_relay wakes the relay as its transaction commits, not at its poll" *
                                    test::concurrency) {
    auto relaxed = settings();
    relaxed.poll = std::chrono::hours(1);  // it would not look again for an hour unless woken
    relaxed.lease = std::chrono::hours(1);
    OutboxRelay relay(relaxed, &telemetry);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox_lease WHERE owner IS NOT NULL") == 1; }));
    for (int i = 0; i < 3; ++i) {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "events", .routing_key = "a.charged", .body = "m" + std::to_string(i)});
        idemq::outbox::wake_relay(tx);
        idemq::outbox::wake_relay(tx);  // folded into one notification
        tx.commit();
        REQUIRE(test::eventually([&] { return broker.ready("sink") == static_cast<std::uint32_t>(i + 1); }));
    }
    CHECK(pending() == 0);
}

TEST_CASE_FIXTURE(RelayFixture, "a relay takes over the lease of a dead one once it expires, in a new epoch") {
    // A relay that died holding the lease until 2 s from now.
    (void)db.count(
        "WITH r AS (UPDATE idemq.outbox_lease SET owner = 'dead', epoch = 7, "
        "expires_at = now() + interval '2 seconds' RETURNING 1) SELECT count(*) FROM r");
    for (int i = 0; i < 10; ++i) stage("m" + std::to_string(i));
    const auto started = std::chrono::steady_clock::now();
    OutboxRelay relay(settings(), &telemetry);
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 10 && pending() == 0; }));
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(1500));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox_published WHERE epoch = 8") == 10);
    CHECK(db.scalar("SELECT owner FROM idemq.outbox_lease") == relay.identity());
}

TEST_CASE_FIXTURE(RelayFixture,
                  "of two relays one publishes: when it stops the other takes over at once" * test::concurrency) {
    auto first = std::make_unique<OutboxRelay>(settings(), &telemetry);
    stage("one");
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 1; }));
    OutboxRelay second(settings(), &telemetry);
    first.reset();  // a graceful stop lets the lease go
    stage("two");
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 2; }, std::chrono::seconds(5)));
    CHECK(db.scalar("SELECT relay FROM idemq.outbox_published WHERE message_id = 'id-two'::bytea") ==
          second.identity());
}

TEST_CASE_FIXTURE(RelayFixture, "a broker outage is waited out: the relay reconnects and publishes, nothing charged") {
    OutboxRelay relay(settings(), &telemetry);
    stage("before");
    REQUIRE(test::eventually([&] { return broker.ready("sink") == 1; }));
    vhost.close_connections();
    for (int i = 0; i < 20; ++i) stage("after" + std::to_string(i));
    test::Broker after(vhost.url());  // the test's own connection was closed too
    REQUIRE(test::eventually([&] { return pending() == 0 && after.ready("sink") >= 21; }));
    CHECK(db.count("SELECT coalesce(max(attempts), 0) FROM idemq.outbox_published") == 1);
}

TEST_CASE_FIXTURE(RelayFixture, "rows of one ordering key arrive in commit order, across a relay killed mid-window") {
    constexpr int kPerKey = 1000;
    {
        pqxx::work tx(connection);
        tx.exec("CREATE TABLE counters (k text PRIMARY KEY, n integer NOT NULL)");
        tx.exec("INSERT INTO counters VALUES ('k0', 0), ('k1', 0), ('k2', 0)");
        tx.commit();
    }
    // Two standalone relays: the first kills itself with confirmed rows not
    // yet recorded, the second takes over when its lease lapses.
    std::map<std::string, std::string> env{{"IDEMQ_AMQP_URL", vhost.url()},
                                           {"IDEMQ_DATABASE_URL", db.url()},
                                           {"IDEMQ_OUTBOX_LEASE", "1s"},
                                           {"IDEMQ_METRICS_ADDR", "127.0.0.1:0"}};
    auto crash_env = env;
    crash_env["IDEMQ_TEST_RELAY_CRASH_AFTER_CONFIRMS"] = "300";
    test::Process doomed(test::bin("payments-worker"), {"relay"}, crash_env);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox_lease WHERE owner IS NOT NULL") == 1; }));
    test::Process survivor(test::bin("payments-worker"), {"relay"}, env);
    std::vector<std::thread> writers;
    for (int w = 0; w < 3; ++w) {
        writers.emplace_back([&, w] {
            pqxx::connection own(db.url());
            for (int i = 0; i < kPerKey; ++i) {
                const std::string key = "k" + std::to_string((i + w) % 3);
                pqxx::work tx(own);
                // The counter's row lock orders the transactions of one key:
                // their commit order is the order of n.
                const int n =
                    tx.exec_params("UPDATE counters SET n = n + 1 WHERE k = $1 RETURNING n", key)[0][0].as<int>();
                idemq::outbox::stage(tx, {.exchange = "events",
                                          .routing_key = "o.charged",
                                          .body = key + ":" + std::to_string(n),
                                          .ordering_key = key});
                tx.commit();
            }
        });
    }
    for (auto& writer : writers) writer.join();
    CHECK(doomed.wait() == 128 + SIGKILL);
    REQUIRE_MESSAGE(test::eventually([&] { return pending() == 0; }, std::chrono::seconds(120)), survivor.output());
    test::stop_gracefully(survivor);
    std::map<std::string, int> last;
    int arrived = 0;
    int copies = 0;
    for (const auto& delivery : broker.peek_all("sink")) {
        const auto colon = delivery.body.find(':');
        const std::string key = delivery.body.substr(0, colon);
        const int n = std::stoi(delivery.body.substr(colon + 1));
        // A copy sent again after the kill may repeat a number, never go back.
        CHECK_MESSAGE(n >= last[key], delivery.body << " after " << key << ":" << last[key]);
        if (n > last[key]) {
            ++arrived;
        } else {
            ++copies;
        }
        last[key] = std::max(last[key], n);
    }
    CHECK(arrived == 3 * kPerKey);
    CHECK(copies > 0);  // the kill did leave confirmed rows unrecorded
}

TEST_CASE_FIXTURE(RelayFixture, "a worker binary runs the relay alone with `relay`, and lets the lease go on SIGTERM") {
    for (int i = 0; i < 5; ++i) stage("m" + std::to_string(i));
    test::Process relay(
        test::bin("payments-worker"), {"relay"},
        {{"IDEMQ_AMQP_URL", vhost.url()}, {"IDEMQ_DATABASE_URL", db.url()}, {"IDEMQ_METRICS_ADDR", "127.0.0.1:0"}});
    REQUIRE_MESSAGE(test::eventually([&] { return broker.ready("sink") == 5 && pending() == 0; }), relay.output());
    test::stop_gracefully(relay);
    // A graceful stop hands over at once: the lease has expired already.
    CHECK(db.count("SELECT count(*) FROM idemq.outbox_lease WHERE expires_at <= now()") == 1);
}

TEST_CASE_FIXTURE(RelayFixture,
                  "a publish the broker refuses for lack of permission is that row's failure, and the rest go on") {
    {
        idemq::detail::AmqpConnection setup({.url = vhost.url(), .connection_name = "relay test setup"});
        setup.declare_exchange("forbidden", "topic");
        setup.bind_queue("sink", "forbidden", "#");
    }
    const auto stage_forbidden = [&](const std::string& body) {
        pqxx::work tx(connection);
        idemq::outbox::stage(tx, {.exchange = "forbidden", .routing_key = "a.charged", .body = body});
        tx.commit();
    };
    // One window: permitted rows before, between and after the refused ones.
    stage("before");
    stage_forbidden("refused-1");
    stage("between");
    stage_forbidden("refused-2");
    stage("after");
    const RestrictedUser user(vhost, "^events$");
    auto restricted = settings();
    restricted.amqp_url = user.url();
    OutboxRelay relay(restricted, &telemetry);
    REQUIRE(test::eventually(
        [&] { return db.count("SELECT count(*) FROM idemq.outbox WHERE parked_at IS NOT NULL") == 2; }));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox WHERE attempts = 3") == 2);  // charged each time, not hopeless
    CHECK(db.scalar("SELECT min(last_error) FROM idemq.outbox")
              .find("the broker refused the publish to exchange 'forbidden'") != std::string::npos);
    CHECK(db.scalar("SELECT min(last_error) FROM idemq.outbox").find("ACCESS_REFUSED") != std::string::npos);
    REQUIRE(test::eventually([&] { return published() == 3; }));
    stage("later");  // the relay is not stuck behind them
    REQUIRE(test::eventually([&] { return published() == 4 && broker.ready("sink") == 4; }));
    CHECK(db.count("SELECT count(*) FROM idemq.outbox") == 2);
    CHECK(telemetry.render().find("idemq_outbox_parked_total 2") != std::string::npos);
    test::Process list(test::bin("idemqctl"), {"outbox", "list", "--parked"}, {{"IDEMQ_DATABASE_URL", db.url()}});
    CHECK(list.wait() == 0);
    CHECK(list.output().find("2 row(s) parked") != std::string::npos);
}
