#include <doctest/doctest.h>

#include "inbox/store_sql.hpp"

using idemq::detail::quote_identifier;
using idemq::detail::text_array;

TEST_CASE("schema names are always quoted as identifiers") {
    CHECK(quote_identifier("idemq") == "\"idemq\"");
    CHECK(quote_identifier("we\"ird") == "\"we\"\"ird\"");
}

TEST_CASE("keys reach Postgres arrays intact, whatever characters they hold") {
    CHECK(text_array({}) == "{}");
    CHECK(text_array({"a", "b"}) == R"({"a","b"})");
    CHECK(text_array({R"(quo"te)", R"(back\slash)", "comma,brace}", ""}) ==
          R"({"quo\"te","back\\slash","comma,brace}",""})");
}

TEST_CASE("a bigint array literal lists the numbers as Postgres reads them") {
    CHECK(idemq::detail::bigint_array({}) == "{}");
    CHECK(idemq::detail::bigint_array({1, -2, 9'000'000'000}) == "{1,-2,9000000000}");
}
