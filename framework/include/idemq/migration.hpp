#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace idemq {

/// One forward-only schema change. Binaries carry their migrations compiled in
/// (see `idemq_embed_migrations` in CMake). In `sql`, `${schema}` stands for
/// idemq's schema, quoted as an identifier.
struct Migration {
    std::string component{};  ///< Whose schema this is: "idemq" for the framework, else the app's name.
    int version = 0;          ///< Strictly increasing within a component.
    std::string name{};
    std::string sql{};
};

/// The framework's own migrations (the inbox and its friends).
[[nodiscard]] std::vector<Migration> framework_migrations();

/// Applies, in order, every migration of `migrations` not yet recorded in
/// `<schema>.schema_migrations`, each in its own transaction, all under one
/// Postgres advisory lock so concurrent callers apply each migration once.
/// Returns the number applied. Throws `Error` when a recorded migration's SQL
/// differs from the binary's (an edited migration) or when SQL fails.
std::size_t apply_migrations(const std::string& database_url, std::string_view schema,
                             const std::vector<Migration>& migrations);

}  // namespace idemq
