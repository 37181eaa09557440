#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <map>

#include "amqp/dead_letter.hpp"
#include "common/text.hpp"

using namespace idemq::detail;

TEST_CASE("a long header value is cut to the limit without splitting a UTF-8 character") {
    CHECK(bounded("short", 10) == "short");
    const std::string cut = bounded(std::string(100, 'x'), 10);
    CHECK(cut.size() == 10);
    CHECK(cut.ends_with("..."));
    // "é" is two bytes; a cut in its middle steps back before it.
    const std::string accents = bounded("ééééééé", 8);
    CHECK(accents.size() <= 8);
    CHECK(accents == "éé...");
}

TEST_CASE("the exception type is reported by its readable name") {
    const idemq::PermanentError error("bad");
    CHECK(exception_type_name(error) == "idemq::PermanentError");
}

TEST_CASE("dead-letter headers say why, where from, and who gave up, each bounded") {
    const Failure failure{
        .reason = "permanent-error", .error = std::string(5000, 'e'), .error_type = "idemq::PermanentError"};
    const HeaderList headers = dead_letter_headers(failure, {.handler = "payments.charge",
                                                             .original_exchange = "payments",
                                                             .original_routing_key = "charge",
                                                             .attempt = 3,
                                                             .first_failure_at = "2023-11-14T22:13:20.000Z",
                                                             .last_failure_at = "2023-11-14T22:15:00.000Z"});
    std::map<std::string, HeaderValue> by_name(headers.begin(), headers.end());
    CHECK(std::get<std::string>(by_name.at("x-idemq-reason")) == "permanent-error");
    CHECK(std::get<std::string>(by_name.at("x-idemq-error")).size() == kMaxHeaderValueBytes);
    CHECK(std::get<std::string>(by_name.at("x-idemq-error-type")) == "idemq::PermanentError");
    CHECK(std::get<std::string>(by_name.at("x-idemq-handler")) == "payments.charge");
    CHECK(std::get<std::string>(by_name.at("x-idemq-original-exchange")) == "payments");
    CHECK(std::get<std::string>(by_name.at("x-idemq-original-routing-key")) == "charge");
    CHECK(std::get<std::int64_t>(by_name.at("x-idemq-attempts")) == 3);
    CHECK(std::get<std::string>(by_name.at("x-idemq-first-failure-at")) == "2023-11-14T22:13:20.000Z");
    CHECK(std::get<std::string>(by_name.at("x-idemq-last-failure-at")) == "2023-11-14T22:15:00.000Z");
    CHECK(std::get<std::string>(by_name.at("x-idemq-failed-at")) == "2023-11-14T22:15:00.000Z");
    CHECK(std::get<std::string>(by_name.at("x-idemq-failed-by")).find('/') != std::string::npos);
}

TEST_CASE("failure times are RFC 3339 UTC with milliseconds") {
    const auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
    CHECK(format_time(time) == "2023-11-14T22:13:20.123Z");
}
