#include <idemq/errors.hpp>
#include <idemq/statements.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace idemq {

void Statements::add(std::string name, std::string sql) {
    if (name.empty()) throw ConfigError("a prepared statement's name must not be empty");
    if (name.starts_with(kReservedPrefix)) {
        throw ConfigError(
            fmt::format("prepared statement '{}': names starting with '{}' are idemq's own", name, kReservedPrefix));
    }
    // Whitespace alone would reach Postgres as an empty query: refused here,
    // where the handler is named, not on first use.
    if (std::all_of(sql.begin(), sql.end(), [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); })) {
        throw ConfigError(fmt::format("prepared statement '{}': the SQL must not be empty", name));
    }
    const auto same = std::find_if(definitions_.begin(), definitions_.end(),
                                   [&](const Definition& definition) { return definition.name == name; });
    if (same != definitions_.end()) {
        if (same->sql == sql) return;
        throw ConfigError(fmt::format("prepared statement '{}' is defined twice with different SQL", name));
    }
    definitions_.push_back({std::move(name), std::move(sql)});
}

}  // namespace idemq
