// The outbox chain across processes, against the real services: relays that
// die by SIGKILL in the worst place (their window confirmed by the broker,
// not yet recorded), again and again, while two workers book charges and
// consume the events — every committed event must produce exactly one
// notification, copies on the wire absorbed by payments.notify's inbox; and
// a worker's NOTIFY waking the relay of another process.
#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <random>
#include <thread>

#include "outbox/relay.hpp"
#include "payments_worker.hpp"
#include "support.hpp"

namespace {

// A standalone relay (`payments-worker relay`) that kills itself once the
// broker confirmed `crash_after` rows, before it records them; 0: never.
std::unique_ptr<test::Process> start_relay(test::PaymentsWorker& payments, std::size_t crash_after) {
    auto env = test::worker_env(payments.vhost(), payments.db());
    env["IDEMQ_OUTBOX_LEASE"] = "1s";  // a dead relay's lease is taken over within a second
    if (crash_after > 0) env["IDEMQ_TEST_RELAY_CRASH_AFTER_CONFIRMS"] = std::to_string(crash_after);
    return std::make_unique<test::Process>(test::bin("payments-worker"), std::vector<std::string>{"relay"}, env);
}

}  // namespace

TEST_CASE("relays killed again and again with their window confirmed but unrecorded: every event notified once") {
    constexpr int kCharges = 3000;
    constexpr int kDeaths = 6;  // then the relays run without the fault, so the run ends
    // The workers run no relay of their own: the standalone ones are the only relays.
    test::PaymentsWorker payments({.env = {{"IDEMQ_OUTBOX_RELAY", "off"}}});
    payments.wait_consuming();
    auto second = payments.start_another();

    std::mt19937 random(std::random_device{}());
    int deaths = 0;
    const auto crash_point = [&] { return deaths < kDeaths ? std::size_t{50} + random() % 400 : std::size_t{0}; };
    std::vector<std::unique_ptr<test::Process>> relays;
    relays.push_back(start_relay(payments, crash_point()));
    relays.push_back(start_relay(payments, crash_point()));
    // A relay that died is replaced at once: two relays run at all times.
    const auto tend = [&] {
        for (auto& relay : relays) {
            if (relay->running()) continue;
            const int code = relay->wait();
            REQUIRE_MESSAGE(code == 128 + SIGKILL, "a relay exited with " << code << ":\n" << relay->output());
            ++deaths;
            relay = start_relay(payments, crash_point());
        }
    };

    std::map<std::string, long long> expected;
    const auto charges = test::unique_charges(kCharges, expected);
    // Published over a few seconds, so the relays die while charges flow.
    for (std::size_t i = 0; i < charges.size(); i += 100) {
        payments.publish({charges.begin() + static_cast<long>(i),
                          charges.begin() + static_cast<long>(std::min(i + 100, charges.size()))});
        tend();
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    const auto notified = [&] { return payments.db().count("SELECT count(*) FROM payments.notifications"); };
    REQUIRE_MESSAGE(test::eventually(
                        [&] {
                            tend();
                            return notified() == kCharges &&
                                   payments.db().count("SELECT count(*) FROM idemq.outbox") == 0;
                        },
                        std::chrono::seconds(120)),
                    "notified " << notified() << " of " << kCharges << " after " << deaths << " relay deaths");

    CHECK(deaths >= kDeaths);
    // Each death left a window on the wire that the next relay sent again:
    // the copies reached payments.notify, whose inbox acked them unapplied.
    const auto duplicates = [&](test::WorkerProcess& worker) {
        return worker.metric("idemq_duplicates_total", {{"handler", "payments.notify"}});
    };
    CHECK(duplicates(payments.process()) + duplicates(*second) > 0);
    second->stop();
    payments.stop();
    payments.check_exactly_once(kCharges, expected);
    CHECK(payments.db().count("SELECT count(DISTINCT charge_id) FROM payments.notifications") == kCharges);
    CHECK(payments.db().count("SELECT count(*) FROM payments.notifications n JOIN payments.ledger l "
                              "ON l.message_id = n.charge_id AND l.account = n.account "
                              "AND l.amount_cents = n.amount_cents") == kCharges);
    CHECK(payments.db().count("SELECT count(*) FROM idemq.outbox_published") == kCharges);
    for (auto& relay : relays) test::stop_gracefully(*relay);
}

TEST_CASE("with IDEMQ_OUTBOX_NOTIFY=on a worker's commit wakes the relay of another process at once") {
    test::PaymentsWorker payments({.env = {{"IDEMQ_OUTBOX_RELAY", "off"}, {"IDEMQ_OUTBOX_NOTIFY", "on"}}});
    payments.wait_consuming();
    idemq::detail::Telemetry telemetry{{}};
    // A relay that would not look again for an hour unless woken: what it
    // publishes, it publishes because the worker's commits NOTIFY it.
    idemq::detail::OutboxRelay relay({.amqp_url = payments.vhost().url(),
                                      .database_url = payments.db().url(),
                                      .poll = std::chrono::hours(1),
                                      .lease = std::chrono::hours(1)},
                                     &telemetry);
    REQUIRE(test::eventually(
        [&] { return payments.db().count("SELECT count(*) FROM idemq.outbox_lease WHERE owner IS NOT NULL") == 1; }));
    std::map<std::string, long long> expected;
    payments.publish(test::unique_charges(3, expected));
    // Charge → "charged" staged and NOTIFYed → published → payments.notify
    // books it, staging nothing.
    REQUIRE_MESSAGE(
        test::eventually([&] { return payments.db().count("SELECT count(*) FROM payments.notifications") == 3; }),
        payments.output());
    payments.stop();
}
