#pragma once

#include <string>
#include <string_view>

namespace idemq::detail {

// `sql` with every "${schema}" replaced by `quoted_schema`, verbatim. A plain
// substring substitution: nothing in the replacement is interpreted (a regex
// replacement would read `$&` or `$1` in a schema name as back-references).
[[nodiscard]] std::string expand_schema(std::string_view sql, std::string_view quoted_schema);

}  // namespace idemq::detail
