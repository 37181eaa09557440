#include <doctest/doctest.h>

#include "charge_handler.hpp"

using payments::parse_charge;

TEST_CASE("a valid charge parses") {
    const auto charge = parse_charge(R"({"account": "A1", "amount_cents": 1250})");
    CHECK(charge.account == "A1");
    CHECK(charge.amount_cents == 1250);
}

TEST_CASE("a malformed charge is a permanent error") {
    CHECK_THROWS_AS((void)parse_charge("not json"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge("[1, 2]"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"amount_cents": 1})"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"account": "A1"})"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"account": "A1", "amount_cents": "12"})"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"account": "A1", "amount_cents": 1.5})"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"account": "", "amount_cents": 1})"), idemq::PermanentError);
    CHECK_THROWS_AS((void)parse_charge(R"({"account": "A1", "amount_cents": -5})"), idemq::PermanentError);
}
