#include <doctest/doctest.h>

#include "common/fingerprint.hpp"
#include "common/text.hpp"
#include "inbox/process_delivery.hpp"

using namespace std::string_literals;
using idemq::detail::printable;

TEST_CASE("printable keeps UTF-8 text and escapes every other byte, so bytes from the wire can be shown") {
    CHECK(printable("pay-1") == "pay-1");
    CHECK(printable("grüße €") == "grüße €");
    CHECK(printable("pay-\0a"s) == "pay-\\x00a");
    CHECK(printable("\xff\xfe") == "\\xff\\xfe");
    CHECK(printable("back\\slash") == "back\\\\slash");
    CHECK(printable("line\nbreak\x7f") == "line\\x0abreak\\x7f");
    // Overlong forms, surrogates, truncated sequences and code points past U+10FFFF are not UTF-8.
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");
    CHECK(printable("\xe2\x82") == "\\xe2\\x82");
    CHECK(printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");
    CHECK(printable("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");
}

TEST_CASE("the first line of a multi-line libpq error") {
    CHECK(idemq::detail::first_line("ERROR: x\nDETAIL: y") == "ERROR: x");
    CHECK(idemq::detail::first_line("one") == "one");
}

TEST_CASE("hex keeps every byte and the byte order") {
    CHECK(idemq::detail::to_hex("pay-\0a"s) == "7061792d0061");
    CHECK(idemq::detail::to_hex("\xff") == "ff");
    CHECK(idemq::detail::to_hex("a") < idemq::detail::to_hex("b"));
    CHECK(idemq::detail::sha256(""s).size() == 32);
}

TEST_CASE("the crash-loop guard knows a message by its id and body, and no other split of the same bytes") {
    using idemq::Message;
    using idemq::detail::delivery_fingerprint;
    const auto fingerprint = [](std::string id, std::string body) {
        return delivery_fingerprint(Message({.body = std::move(body), .message_id = std::move(id)}));
    };
    CHECK(fingerprint("m-1", "x") == fingerprint("m-1", "x"));
    CHECK(fingerprint("m-1", "x") != fingerprint("m-1", "y"));
    CHECK(fingerprint("ab", "c") != fingerprint("a", "bc"));
    // Redelivery changes nothing the fingerprint reads.
    CHECK(delivery_fingerprint(Message({.body = "b", .message_id = "m", .redelivered = true, .attempt = 3})) ==
          fingerprint("m", "b"));
}
