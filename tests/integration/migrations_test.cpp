// Migrations into schemas whose names are unusual but legal identifiers.
#include <doctest/doctest.h>

#include <idemq/migration.hpp>

#include "support.hpp"

TEST_CASE("a schema whose name holds regex replacement syntax ($&, $1) is migrated intact") {
    test::Database db;
    const std::string schema = "odd$&name$1";
    CHECK(idemq::apply_migrations(db.url(), schema, idemq::framework_migrations()) ==
          idemq::framework_migrations().size());
    // The tables are in that schema, not in one whose name got the placeholder pasted in.
    CHECK(db.scalar("SELECT to_regclass('\"odd$&name$1\".inbox') IS NOT NULL") == "t");
    CHECK(db.scalar("SELECT to_regclass('\"odd$&name$1\".handling_started') IS NOT NULL") == "t");
    CHECK(db.count("SELECT count(*) FROM \"odd$&name$1\".schema_migrations") ==
          static_cast<long long>(idemq::framework_migrations().size()));
    CHECK(db.count("SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%schema}%'") == 0);
    // Applied once: a second run finds every checksum recorded.
    CHECK(idemq::apply_migrations(db.url(), schema, idemq::framework_migrations()) == 0);
}
