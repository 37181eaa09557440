#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <chrono>
#include <string>

#include "common/config_text.hpp"

using idemq::detail::parse_duration;

TEST_CASE("a duration takes d, h, m or s, or a number of seconds, and a bad one names its setting") {
    using std::chrono::seconds;
    CHECK(parse_duration("14d", "X") == seconds(14 * 24 * 3600));
    CHECK(parse_duration("36h", "X") == seconds(36 * 3600));
    CHECK(parse_duration("90m", "X") == seconds(90 * 60));
    CHECK(parse_duration("45s", "X") == seconds(45));
    CHECK(parse_duration("45", "X") == seconds(45));
    for (const char* bad : {"", "-1d", "3w", "1.5h", "d", "99999d"}) {
        CAPTURE(bad);
        try {
            (void)parse_duration(bad, "IDEMQ_INBOX_RETENTION");
            FAIL("expected a ConfigError");
        } catch (const idemq::ConfigError& e) {
            CHECK(std::string(e.what()).find("IDEMQ_INBOX_RETENTION") != std::string::npos);
        }
    }
}
