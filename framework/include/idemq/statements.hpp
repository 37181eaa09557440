#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace idemq {

/// The prepared statements a handler runs with `tx.exec_prepared(name, ...)`.
/// A handler fills it in `prepare()`, which the worker calls once, when the
/// handler is registered; the worker then prepares every definition on each
/// of its handler connections (a new one, and one that replaces a connection
/// lost to a Postgres restart), so a handler never manages connections itself.
/// Names share one namespace per connection with the worker's other handlers
/// and with idemq's own statements (prefix `idemq_`).
class Statements final {
public:
    /// One named statement.
    struct Definition {
        std::string name;
        std::string sql;
    };

    /// The prefix of idemq's own statement names, which handlers cannot use.
    static constexpr std::string_view kReservedPrefix = "idemq_";

    /// Defines statement `name` as `sql` (parameters `$1`, `$2`, ...). Throws
    /// ConfigError for an empty name or SQL, a name starting with
    /// `kReservedPrefix`, or a name already added with different SQL (adding
    /// the same definition twice is harmless).
    void add(std::string name, std::string sql);

    /// The definitions, in the order they were first added.
    [[nodiscard]] const std::vector<Definition>& definitions() const noexcept { return definitions_; }

private:
    std::vector<Definition> definitions_;
};

}  // namespace idemq
