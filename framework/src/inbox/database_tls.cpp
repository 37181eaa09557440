#include "inbox/database_tls.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <libpq-fe.h>

#include <memory>
#include <string_view>

namespace idemq::detail {
namespace {

struct ConninfoFree {
    void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoFree>;

const char* value_of(const Conninfo& options, std::string_view keyword) {
    for (const PQconninfoOption* option = options.get(); option != nullptr && option->keyword != nullptr; ++option) {
        if (keyword == option->keyword) return option->val;
    }
    return nullptr;
}

}  // namespace

std::string effective_sslmode(const std::string& url) {
    char* error = nullptr;
    Conninfo parsed(PQconninfoParse(url.c_str(), &error));
    if (!parsed) {
        // libpq's message may quote the text, password and all.
        PQfreemem(error);
        throw ConfigError("IDEMQ_DATABASE_URL is not a valid Postgres URL or connection string");
    }
    if (const char* mode = value_of(parsed, "sslmode"); mode != nullptr && *mode != '\0') return mode;
    // PQconndefaults fills in the environment (PGSSLMODE) and the built-in defaults.
    const Conninfo defaults(PQconndefaults());
    const char* mode = defaults ? value_of(defaults, "sslmode") : nullptr;
    return mode != nullptr && *mode != '\0' ? mode : "prefer";
}

void require_verified_database_tls(const std::string& url) {
    const std::string mode = effective_sslmode(url);
    if (mode == "verify-full") return;
    throw ConfigError(fmt::format(
        "IDEMQ_REQUIRE_TLS=1 refuses the database connection: IDEMQ_DATABASE_URL has sslmode={}{}; add "
        "sslmode=verify-full (and sslrootcert=<CA file>) so the server's certificate and host name are checked",
        mode, mode == "prefer" ? " (libpq's default)" : ""));
}

}  // namespace idemq::detail
