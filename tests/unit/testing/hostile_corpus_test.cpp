#include <doctest/doctest.h>

#include <idemq/testing.hpp>

#include <set>

#include "testing/hostile_corpus.hpp"

TEST_CASE("every hostile case has a unique name, starts from the baseline and fits in a frame") {
    const idemq::detail::CaseInput in{.example = {.body = R"({"account": "A1", "amount_cents": 100})",
                                                  .message_id = "hostile-1",
                                                  .content_type = "application/json",
                                                  .headers = {{"tenant", "t-1"}}},
                                      .frame_max = idemq::detail::kDefaultFrameMax,
                                      .max_body_bytes = 1024,
                                      .queue = "orders"};
    const auto names = idemq::testing::hostile_case_names();
    REQUIRE(!names.empty());
    CHECK(names.front() == "baseline");
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
    for (const auto& hostile : idemq::detail::hostile_cases()) {
        CAPTURE(hostile.name);
        const auto message = hostile.build(in);
        const auto size = message.properties.encoded_size();
        REQUIRE(size.has_value());
        CHECK(*size + 8 <= in.frame_max);
    }
}

TEST_CASE("hostile cases change only what they name") {
    const idemq::Message::Fields example{.body = "{}", .message_id = "m-1", .correlation_id = "c-1"};
    const idemq::detail::CaseInput in{.example = example, .max_body_bytes = 10, .queue = "q"};
    const auto build = [&](std::string_view name) {
        for (const auto& hostile : idemq::detail::hostile_cases()) {
            if (hostile.name == name) return hostile.build(in);
        }
        FAIL("no case " << name);
        return idemq::detail::plain_message(example);
    };
    const auto baseline = build("baseline");
    CHECK(baseline.body == "{}");
    CHECK(baseline.properties.message_id() == "m-1");
    CHECK(baseline.properties.correlation_id() == "c-1");
    CHECK(build("message-id-nul").properties.message_id() == std::string("m-1\0nul", 7));
    CHECK(build("message-id-nul").body == "{}");
    CHECK(build("message-id-absent").properties.message_id().empty());
    CHECK(build("message-id-max-length").properties.message_id().size() == 255);
    CHECK(build("body-oversized").body.size() == 11);
    CHECK(build("body-nul-inside").body == std::string("{\0}", 3));
    const auto routed = build("routing-headers-on-example").properties.headers_as_text();
    CHECK(routed.at("CC") == R"(["q"])");
    CHECK(routed.at("BCC") == R"(["q"])");
}

TEST_CASE("make_message and FakeContext give a handler what a worker would, without one") {
    const auto message =
        idemq::testing::make_message({.body = "world", .headers = {{"traceparent", "00-abc-def-01"}}, .attempt = 2});
    idemq::testing::FakeContext ctx(message, "greeter");
    CHECK(ctx.handler_name() == "greeter");
    CHECK(ctx.message_id() == "test-1");
    CHECK(ctx.correlation_id() == "test-1");
    CHECK(ctx.idempotency_key() == "test-1");
    CHECK(ctx.attempt() == 2);
    CHECK(ctx.trace_parent() == "00-abc-def-01");
    CHECK(ctx.trace_state().empty());
    CHECK(message.content_type() == "application/json");
    ctx.log().info("hello {} on attempt {}", message.body(), ctx.attempt());
    REQUIRE(ctx.logger.lines.size() == 1);
    CHECK(ctx.logger.lines[0].text == "hello world on attempt 2");
    CHECK(idemq::testing::FakeContext(message, "h", "custom-key").idempotency_key() == "custom-key");
}
