#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "amqp/broker_session.hpp"
#include "amqp/idemq_headers.hpp"
#include "core/settlement.hpp"
#include "ops/telemetry.hpp"

using idemq::detail::ConfirmedPublisher;
using idemq::detail::FailureStamp;
using idemq::detail::OwnedProperties;
using idemq::detail::RegisteredHandler;
using idemq::detail::Settlement;
using idemq::detail::SharedBody;
using idemq::detail::Verdict;
namespace header = idemq::detail::header;

namespace {

// The broker as settlement sees it: what it was asked to do, and the
// confirms it holds until the test answers them.
class FakeChannel final : public idemq::detail::SettlementChannel {
public:
    struct Published {
        std::string exchange;
        std::string routing_key;
        OwnedProperties properties;
        std::string body;
        ConfirmedPublisher::Callback done;
    };

    void ack(std::uint64_t tag, bool multiple) override {
        acked.push_back(tag);
        multiples.push_back(multiple);
    }
    void reject(std::uint64_t tag, bool requeue) override {
        CHECK(requeue);
        rejected.push_back(tag);
    }
    void publish(std::string exchange, std::string routing_key, OwnedProperties properties, SharedBody body,
                 ConfirmedPublisher::Callback done) override {
        published.push_back({std::move(exchange), std::move(routing_key), std::move(properties),
                             std::string(body.bytes), std::move(done)});
    }
    [[nodiscard]] int frame_max() const noexcept override { return 131072; }

    std::vector<std::uint64_t> acked;
    std::vector<bool> multiples;
    std::vector<std::uint64_t> rejected;
    std::vector<Published> published;
};

std::vector<RegisteredHandler> one_handler() {
    std::vector<RegisteredHandler> handlers(1);
    handlers[0].route = {.handler = "payments", .queue = "payments.charge", .exchange = "payments"};
    return handlers;
}

struct Fixture {
    std::vector<RegisteredHandler> handlers = one_handler();
    std::vector<std::chrono::milliseconds> tiers{std::chrono::milliseconds(250), std::chrono::milliseconds(1000)};
    idemq::detail::Telemetry telemetry{{"payments"}};
    int settled = 0;
    int flush_requests = 0;
    Settlement settlement{handlers,
                          tiers,
                          telemetry,
                          [this] { ++settled; },
                          [this] { ++flush_requests; },
                          {.hold = std::chrono::milliseconds(5), .pressure = 100}};
    FakeChannel channel;

    Fixture() { settlement.attach(channel, 1); }

    // What the runtime does once per wakeup after a flush was requested.
    void flush(std::chrono::milliseconds at = std::chrono::milliseconds(0)) {
        settlement.flush(std::chrono::steady_clock::now() + at);
    }

    void admit(std::uint64_t tag, int attempt = 1) {
        auto message =
            std::make_shared<const idemq::Message>(idemq::Message::Fields{.body = "{\"amount\":1}",
                                                                          .message_id = "m-" + std::to_string(tag),
                                                                          .exchange = "payments",
                                                                          .routing_key = "charge",
                                                                          .attempt = attempt});
        settlement.admit(tag, 0, std::move(message), OwnedProperties::make("m", "", "application/json", {}));
    }
};

const idemq::detail::Failure kFailure{.reason = "permanent-error", .error = "no such account", .error_type = "x"};
const FailureStamp kStamp{
    .attempt = 3, .first_failure_at = "2026-01-01T00:00:00.000Z", .last_failure_at = "2026-01-01T00:00:05.000Z"};

}  // namespace

TEST_CASE("an ack verdict acks the delivery and forgets it") {
    Fixture f;
    f.admit(1);
    CHECK(f.settlement.size() == 1);
    f.settlement.settle(1, Verdict::ack());
    // Not at once: on the flush the runtime runs once per wakeup.
    CHECK(f.channel.acked.empty());
    CHECK(f.flush_requests == 1);
    CHECK(f.settlement.size() == 1);
    CHECK(f.settled == 0);
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1});
    CHECK(f.settlement.empty());
    CHECK(f.settled == 1);
}

TEST_CASE("a duplicate is acked and counted, a release is given back to the queue") {
    Fixture f;
    f.admit(1);
    f.admit(2);
    f.settlement.settle(1, Verdict::duplicate());
    f.settlement.settle(2, Verdict::release());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1});
    CHECK(f.channel.rejected == std::vector<std::uint64_t>{2});
    CHECK(f.telemetry.stats().duplicates == 1);
    CHECK(f.telemetry.stats().released == 1);
    CHECK(f.settlement.empty());
}

TEST_CASE("a dead letter is acked only once the broker confirmed its copy in the DLQ") {
    Fixture f;
    f.admit(1, 3);
    f.settlement.settle(1, Verdict::dead_letter(kFailure, kStamp));
    REQUIRE(f.channel.published.size() == 1);
    const auto& copy = f.channel.published.front();
    CHECK(copy.exchange.empty());
    CHECK(copy.routing_key == "payments.charge.dlq");
    CHECK(copy.body == "{\"amount\":1}");
    CHECK(copy.properties.int_header(header::kAttempts) == 3);
    CHECK(copy.properties.headers_as_text().at(std::string(header::kReason)) == "permanent-error");
    CHECK(copy.properties.headers_as_text().at(std::string(header::kFirstFailureAt)) == kStamp.first_failure_at);
    // Not before the confirm: a crash now leaves the original in the queue.
    CHECK(f.channel.acked.empty());
    CHECK(f.settlement.size() == 1);

    f.channel.published.front().done(std::nullopt);
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1});
    CHECK(f.telemetry.stats().dead_lettered.at("permanent-error") == 1);
    CHECK(f.settlement.empty());
}

TEST_CASE("a copy the broker refuses leaves the original in the queue, uncounted") {
    Fixture f;
    f.admit(5);
    f.settlement.settle(5, Verdict::dead_letter(kFailure, kStamp));
    REQUIRE(f.channel.published.size() == 1);
    f.channel.published.front().done(std::string("NO_ROUTE"));
    CHECK(f.channel.acked.empty());
    CHECK(f.channel.rejected == std::vector<std::uint64_t>{5});
    CHECK(f.telemetry.stats().dead_lettered.empty());
}

TEST_CASE("a delayed retry goes to the tier for its delay, for the next attempt") {
    Fixture f;
    f.admit(1, 3);
    f.settlement.settle(1, Verdict::retry_later(kFailure, kStamp, std::chrono::milliseconds(1500)));
    REQUIRE(f.channel.published.size() == 1);
    const auto& copy = f.channel.published.front();
    CHECK(copy.exchange == "idemq.delay.1000ms");
    CHECK(copy.routing_key == "payments.charge");
    CHECK(copy.properties.int_header(header::kAttempt) == 4);
    CHECK(f.channel.acked.empty());
    f.channel.published.front().done(std::nullopt);
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1});
    CHECK(f.telemetry.stats().delayed_retries == 1);
}

TEST_CASE("after the connection is lost, late verdicts and confirms touch nothing") {
    Fixture f;
    f.admit(1);
    f.admit(2);
    f.settlement.settle(1, Verdict::dead_letter(kFailure, kStamp));
    f.settlement.forget_all();
    CHECK(f.settlement.empty());
    // The broker requeued both; a confirm or a verdict that arrives now
    // must not ack a tag of the next connection.
    f.channel.published.front().done(std::nullopt);
    f.settlement.settle(2, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked.empty());
    CHECK(f.channel.rejected.empty());

    // Tags of the new connection start again and are settled normally.
    FakeChannel next;
    f.settlement.attach(next, 2);
    f.admit(1);
    f.settlement.settle(1, Verdict::ack());
    f.flush();
    CHECK(next.acked == std::vector<std::uint64_t>{1});
}

TEST_CASE("a verdict for a tag settlement does not know is ignored") {
    Fixture f;
    f.settlement.settle(42, Verdict::ack());
    CHECK(f.channel.acked.empty());
    CHECK(f.settled == 0);
}

TEST_CASE("verdicts of one wakeup are acked by one multiple ack, and counted when it is sent") {
    Fixture f;
    for (std::uint64_t tag = 1; tag <= 4; ++tag) f.admit(tag);
    for (const std::uint64_t tag : {2, 1, 4, 3}) f.settlement.settle(tag, Verdict::ack());
    CHECK(f.channel.acked.empty());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{4});
    CHECK(f.channel.multiples == std::vector<bool>{true});
    CHECK(f.settlement.empty());
    CHECK(f.settled == 1);  // once per flush
    CHECK(f.telemetry.stats().acks_sent == 1);
    CHECK(f.telemetry.stats().deliveries_acked == 4);
}

TEST_CASE("a delivery still running stops the run, and those after it wait, then go alone") {
    Fixture f;
    for (std::uint64_t tag = 1; tag <= 4; ++tag) f.admit(tag);
    f.settlement.settle(1, Verdict::ack());
    f.settlement.settle(3, Verdict::ack());
    f.settlement.settle(4, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1});
    CHECK(f.settlement.size() == 3);  // 2 running, 3 and 4 held
    REQUIRE(f.settlement.next_flush().has_value());
    f.flush(std::chrono::milliseconds(10));
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1, 3, 4});
    CHECK(f.channel.multiples == std::vector<bool>{false, false, false});
    CHECK(f.settlement.size() == 1);
    f.settlement.settle(2, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{1, 3, 4, 2});
    CHECK(f.channel.multiples.back() == false);  // 3 and 4 are acked already
}

TEST_CASE("a release in the middle of a run is rejected at once and skipped by the multiple ack") {
    Fixture f;
    for (std::uint64_t tag = 1; tag <= 3; ++tag) f.admit(tag);
    f.settlement.settle(1, Verdict::ack());
    f.settlement.settle(2, Verdict::release());
    CHECK(f.channel.rejected == std::vector<std::uint64_t>{2});
    f.settlement.settle(3, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{3});
    CHECK(f.channel.multiples == std::vector<bool>{true});
    CHECK(f.settlement.empty());
}

TEST_CASE("a delivery refused on arrival does not stop the runs after it") {
    Fixture f;
    f.admit(1);
    f.settlement.refuse(2);
    f.admit(3);
    CHECK(f.channel.rejected == std::vector<std::uint64_t>{2});
    f.settlement.settle(1, Verdict::ack());
    f.settlement.settle(3, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{3});
    CHECK(f.channel.multiples == std::vector<bool>{true});
}

TEST_CASE("close acks what is ready first, held or not, and nothing after") {
    Fixture f;
    for (std::uint64_t tag = 1; tag <= 4; ++tag) f.admit(tag);
    f.settlement.settle(1, Verdict::ack());
    f.settlement.settle(2, Verdict::ack());
    f.settlement.settle(4, Verdict::ack());
    f.settlement.close();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{2, 4});
    CHECK(f.channel.multiples == std::vector<bool>{true, false});
    f.settlement.settle(3, Verdict::ack());
    f.flush();
    CHECK(f.channel.acked == std::vector<std::uint64_t>{2, 4});
}

TEST_CASE("a connection lost between commit and ack acks nothing of it, then or on the next connection") {
    Fixture f;
    f.admit(1);
    f.admit(2);
    f.settlement.settle(1, Verdict::ack());
    f.settlement.settle(2, Verdict::ack());
    f.settlement.forget_all();  // before the flush the runtime had posted ran
    FakeChannel next;
    f.settlement.attach(next, 2);
    f.flush(std::chrono::milliseconds(10));
    CHECK(f.channel.acked.empty());
    CHECK(next.acked.empty());
    // Tag 1 of the new channel is another message: acked only for its own verdict.
    f.admit(1);
    f.flush(std::chrono::milliseconds(10));
    CHECK(next.acked.empty());
    f.settlement.settle(1, Verdict::ack());
    f.flush();
    CHECK(next.acked == std::vector<std::uint64_t>{1});
}
