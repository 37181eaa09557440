#include <doctest/doctest.h>

#include "inbox/migration_sql.hpp"

using idemq::detail::expand_schema;

TEST_CASE("migration SQL gets the quoted schema verbatim, whatever characters it holds") {
    CHECK(expand_schema("CREATE TABLE ${schema}.inbox ()", "\"idemq\"") == "CREATE TABLE \"idemq\".inbox ()");
    // Regex replacement syntax in the name must stay literal.
    CHECK(expand_schema("SELECT 1 FROM ${schema}.t", "\"a$&b$1$$c\"") == "SELECT 1 FROM \"a$&b$1$$c\".t");
    CHECK(expand_schema("${schema}${schema} ${schema}", "\"s\"") == "\"s\"\"s\" \"s\"");
    CHECK(expand_schema("no placeholder", "\"s\"") == "no placeholder");
    CHECK(expand_schema("", "\"s\"") == "");
    // A replacement that itself holds the placeholder is not expanded again.
    CHECK(expand_schema("${schema}.t", "\"${schema}\"") == "\"${schema}\".t");
    CHECK(expand_schema("${schem ${schema", "\"s\"") == "${schem ${schema");
}
