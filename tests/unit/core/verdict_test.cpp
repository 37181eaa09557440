#include <doctest/doctest.h>

#include "amqp/idemq_headers.hpp"
#include "core/verdict.hpp"

using idemq::Message;
using idemq::detail::stamp_failure;
using idemq::detail::Verdict;

namespace {

Message message(int attempt, idemq::Headers headers = {}) {
    return Message({.body = "{}", .message_id = "m-1", .headers = std::move(headers), .attempt = attempt});
}

}  // namespace

TEST_CASE("a failure stamp names the attempt, and the first failure the headers carry") {
    const auto fresh = stamp_failure(message(3));
    CHECK(fresh.attempt == 3);
    CHECK(fresh.first_failure_at == fresh.last_failure_at);
    CHECK(fresh.last_failure_at.size() == std::string("2026-01-01T00:00:00.000Z").size());

    // An earlier attempt of the same delivery failed first.
    const auto again = stamp_failure(message(4), "2026-01-01T00:00:00.000Z");
    CHECK(again.first_failure_at == "2026-01-01T00:00:00.000Z");
    CHECK(again.last_failure_at != again.first_failure_at);

    // An earlier delivery's first failure, carried in the retry's headers, wins.
    const auto retried =
        stamp_failure(message(5, {{std::string(idemq::detail::header::kFirstFailureAt), "2025-06-01T12:00:00.000Z"}}),
                      "2026-01-01T00:00:00.000Z");
    CHECK(retried.first_failure_at == "2025-06-01T12:00:00.000Z");
}

TEST_CASE("a verdict that needs a failure carries it with its stamp") {
    CHECK(Verdict::ack().kind() == Verdict::Kind::kAck);
    CHECK(Verdict::duplicate().kind() == Verdict::Kind::kDuplicate);
    CHECK(Verdict::release().kind() == Verdict::Kind::kRelease);

    const auto stamp = stamp_failure(message(2));
    const Verdict dead = Verdict::dead_letter({.reason = "crash-loop", .error = "died", .error_type = "idemq"}, stamp);
    CHECK(dead.kind() == Verdict::Kind::kDeadLetter);
    CHECK(dead.failure().reason == "crash-loop");
    CHECK(dead.stamp().attempt == 2);

    const Verdict later =
        Verdict::retry_later({.reason = {}, .error = "timeout", .error_type = "x"}, stamp, std::chrono::seconds(4));
    CHECK(later.kind() == Verdict::Kind::kRetryLater);
    CHECK(later.retry_delay() == std::chrono::seconds(4));
    CHECK(later.stamp().first_failure_at == stamp.first_failure_at);
}
