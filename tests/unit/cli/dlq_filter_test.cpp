#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include "cli/dlq_filter.hpp"

using namespace idemq::detail;

namespace {

DeadLetterView message(std::string id, std::string reason, std::string failed_at) {
    DeadLetterView view;
    view.message_id = std::move(id);
    view.reason = std::move(reason);
    view.error_type = "idemq::PermanentError";
    view.failed_at = std::move(failed_at);
    view.headers = {{"tenant", "acme"}};
    return view;
}

}  // namespace

TEST_CASE("a DLQ filter with no criteria selects everything, and only --all may act on that") {
    DlqFilter filter;
    CHECK(filter.selects_everything());
    CHECK(filter.matches(message("a", "permanent-error", "2026-11-24T06:00:00.000Z")));
    filter.reason = "permanent-error";
    CHECK_FALSE(filter.selects_everything());
}

TEST_CASE("DLQ filters combine with AND, message ids with OR") {
    DlqFilter filter{.message_ids = {"a", "b"}, .reason = "permanent-error"};
    CHECK(filter.matches(message("a", "permanent-error", "")));
    CHECK(filter.matches(message("b", "permanent-error", "")));
    CHECK_FALSE(filter.matches(message("c", "permanent-error", "")));
    CHECK_FALSE(filter.matches(message("a", "crash-loop", "")));
    filter = {.headers = {{"tenant", "acme"}}};
    CHECK(filter.matches(message("a", "x", "")));
    filter = {.headers = {{"tenant", "globex"}}};
    CHECK_FALSE(filter.matches(message("a", "x", "")));
    filter = {.error_type = "std::runtime_error"};
    CHECK_FALSE(filter.matches(message("a", "x", "")));
}

TEST_CASE("--since and --until compare UTC failure times, a bare date meaning that day's start") {
    const DlqFilter since{.since = "2026-11-24"};
    CHECK(since.matches(message("a", "r", "2026-11-24T00:00:00.000Z")));
    CHECK_FALSE(since.matches(message("a", "r", "2026-11-23T23:59:59.999Z")));
    const DlqFilter until{.until = "2026-11-24T06:00"};
    CHECK(until.matches(message("a", "r", "2026-11-24T05:59:59.999Z")));
    CHECK_FALSE(until.matches(message("a", "r", "2026-11-24T06:00:00.000Z")));
}

TEST_CASE("a header filter must be NAME=VALUE") {
    CHECK(parse_header_filter("tenant=acme") == std::pair<std::string, std::string>{"tenant", "acme"});
    CHECK(parse_header_filter("k=") == std::pair<std::string, std::string>{"k", ""});
    CHECK_THROWS_AS((void)parse_header_filter("tenant"), idemq::ConfigError);
    CHECK_THROWS_AS((void)parse_header_filter("=x"), idemq::ConfigError);
}
